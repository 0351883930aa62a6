//! Golden tests: every recording's canonical form, one event per line, checked into
//! `tests/golden/`. A diff reads like the protocol. Refresh with `UPDATE_EXPECT=1 cargo test
//! -p dragoman-translate --test golden` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dragoman_model::{Dialect, Losses};
use dragoman_translate as hub;
use serde_json::Value;

/// Long strings (base64 media, encrypted reasoning) are shortened so goldens stay readable;
/// the length and a checksum still catch any change.
fn shorten(v: &mut Value) {
    match v {
        Value::String(s) if s.len() > 160 => {
            let sum = s
                .bytes()
                .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
            let head: String = s.chars().take(60).collect();
            *s = format!("{head}…[{} bytes, sum {sum:08x}]", s.len());
        }
        Value::Array(a) => a.iter_mut().for_each(shorten),
        Value::Object(m) => m.values_mut().for_each(shorten),
        _ => {}
    }
}

fn dump<T: serde::Serialize>(v: &T) -> Value {
    let mut j = serde_json::to_value(v).unwrap();
    shorten(&mut j);
    j
}

fn canonical(d: Dialect, kind: &str, path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let mut losses = Losses::new();
    let mut out = String::new();
    match kind {
        "requests" => match hub::decode_request(d, &bytes, &mut losses) {
            Ok(r) => out.push_str(&serde_json::to_string_pretty(&dump(&r)).unwrap()),
            Err(e) => out.push_str(&format!("decode error: {e}")),
        },
        "responses" => match hub::decode_response(d, &bytes, &mut losses) {
            Ok(r) => out.push_str(&serde_json::to_string_pretty(&dump(&r)).unwrap()),
            Err(e) => out.push_str(&format!("decode error: {e}")),
        },
        "streams" => match hub::decode_stream(d, &bytes) {
            Ok(events) => {
                for e in events {
                    out.push_str(&serde_json::to_string(&dump(&e)).unwrap());
                    out.push('\n');
                }
            }
            Err(e) => out.push_str(&format!("decode error: {e}")),
        },
        _ => {
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            let status = doc["status"].as_u64().map(|s| s as u16);
            let err = hub::decode_error(d, status, &serde_json::to_vec(&doc["body"]).unwrap());
            out.push_str(&serde_json::to_string_pretty(&dump(&err)).unwrap());
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    for l in losses.iter() {
        out.push_str(&format!("# {l}\n"));
    }
    out
}

fn golden_path(d: Dialect, kind: &str, input: &Path) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(d.as_str())
        .join(kind)
        .join(format!(
            "{}.txt",
            input.file_stem().unwrap().to_string_lossy()
        ))
}

#[test]
fn canonical_forms_match_the_goldens() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    for d in Dialect::ALL {
        for kind in ["requests", "responses", "streams", "errors"] {
            for input in files(d, kind) {
                let got = canonical(d, kind, &input);
                let gp = golden_path(d, kind, &input);
                let want = std::fs::read_to_string(&gp).ok();
                if want.as_deref() == Some(got.as_str()) {
                    continue;
                }
                if update {
                    std::fs::create_dir_all(gp.parent().unwrap()).unwrap();
                    std::fs::write(&gp, &got).unwrap();
                } else {
                    stale.push(format!("{}", gp.display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{} goldens differ or are missing (run UPDATE_EXPECT=1 cargo test -p dragoman-translate --test golden and review):\n{}",
        stale.len(),
        stale.join("\n")
    );
}
