//! Tidy checks that keep ARCHITECTURE.md true: the dependency invariants between crates, the
//! absence of I/O in translation, and the `//!` line that opens every source file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Each workspace crate and the names of its normal (non-dev) dependencies, from `cargo metadata`.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut graph = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let deps = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        graph.insert(p["name"].as_str().unwrap().to_owned(), deps);
    }
    graph
}

const DIALECTS: &[&str] = &[
    "dragoman-anthropic",
    "dragoman-openai-chat",
    "dragoman-openai-responses",
];
const IO_CRATES: &[&str] = &[
    "tokio", "hyper", "axum", "reqwest", "sqlx", "redis", "tower", "mio",
];

#[test]
fn dependency_invariants_hold() {
    let g = dependency_graph();
    let internal = |c: &str| {
        g[c].iter()
            .filter(|d| d.starts_with("dragoman"))
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    for base in ["dragoman-model", "dragoman-sse"] {
        assert!(
            internal(base).is_empty(),
            "{base} must depend on no dragoman crate: {:?}",
            internal(base)
        );
    }
    let allowed: BTreeSet<String> = ["dragoman-model", "dragoman-sse"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for d in DIALECTS {
        let deps = internal(d);
        assert!(
            deps.is_subset(&allowed),
            "{d} may depend only on model and sse, has {deps:?}"
        );
    }
    for c in ["dragoman-model", "dragoman-sse", "dragoman-translate"]
        .iter()
        .chain(DIALECTS)
    {
        for io in IO_CRATES {
            assert!(
                !g[*c].contains(*io),
                "{c} is translation and must not depend on {io}"
            );
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn translation_crates_do_no_io() {
    let forbidden = [
        "std::fs",
        "std::net",
        "std::process",
        "std::thread::sleep",
        "async fn",
        ".await",
        "std::env::var",
    ];
    for c in ["dragoman-model", "dragoman-sse", "dragoman-translate"]
        .iter()
        .chain(DIALECTS)
    {
        let mut files = Vec::new();
        rust_files(&root().join("crates").join(c).join("src"), &mut files);
        for f in files {
            if f.file_name().is_some_and(|n| n == "tests.rs")
                || f.components().any(|c| c.as_os_str() == "tests")
            {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            for word in forbidden {
                assert!(
                    !text.contains(word),
                    "{} uses `{word}`: translation must stay pure",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn every_source_file_says_why_it_exists() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    assert!(files.len() > 20);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must open with a //! line saying why it exists",
            f.display()
        );
        assert!(
            !text.contains(concat!("dbg", "!(")),
            "{} contains a debug macro",
            f.display()
        );
    }
}

#[test]
fn architecture_md_names_every_crate() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    for c in dependency_graph().keys() {
        assert!(
            doc.contains(&format!("`{c}`")),
            "ARCHITECTURE.md does not describe `{c}`"
        );
    }
}
