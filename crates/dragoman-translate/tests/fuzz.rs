//! Property-based fuzzing of every decoder: arbitrary bytes, and recorded bodies and streams
//! with random damage (truncation, byte flips, deleted or retyped fields), must give a value or
//! a typed error — never a panic, never a hang. `FUZZ_CASES=N` runs longer (the default keeps
//! the suite fast).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dragoman_model::{Dialect, Losses, StreamOptions};
use dragoman_translate as hub;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn corpus(kind: &str) -> Vec<(Dialect, Vec<u8>)> {
    let mut out = Vec::new();
    for d in Dialect::ALL {
        for p in files(d, kind) {
            out.push((d, std::fs::read(p).unwrap()));
        }
    }
    out
}

/// Applies one random structural change to a JSON value.
fn damage(v: &mut Value, choice: &mut impl Iterator<Item = u32>) {
    let pick = choice.next().unwrap_or(0);
    match v {
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[pick as usize % keys.len()];
            match choice.next().unwrap_or(0) % 5 {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), Value::Null);
                }
                2 => {
                    m.insert(k.clone(), Value::from(12345));
                }
                3 => {
                    m.insert(k.clone(), Value::from("?"));
                }
                _ => damage(m.get_mut(k).unwrap(), choice),
            }
        }
        Value::Array(a) if !a.is_empty() => {
            let i = pick as usize % a.len();
            if choice.next().unwrap_or(0).is_multiple_of(3) {
                a.remove(i);
            } else {
                damage(&mut a[i], choice);
            }
        }
        other => *other = Value::Array(vec![Value::Bool(true)]),
    }
}

fn all_decoders(d: Dialect, bytes: &[u8]) {
    let mut l = Losses::new();
    if let Ok(r) = hub::decode_request(d, bytes, &mut l) {
        for t in Dialect::ALL {
            hub::encode_request(t, &r, &mut l);
        }
    }
    if let Ok(r) = hub::decode_response(d, bytes, &mut l) {
        for t in Dialect::ALL {
            hub::encode_response(t, &r, &mut l);
        }
    }
    hub::decode_error(d, Some(400), bytes);
    for t in Dialect::ALL {
        let _ = hub::translate_stream(d, t, bytes, StreamOptions::default(), &mut l);
    }
}

#[test]
fn arbitrary_bytes_never_panic_any_decoder() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..2048), |bytes| {
            for d in Dialect::ALL {
                all_decoders(d, &bytes);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn damaged_recorded_json_never_panics() {
    let bodies: Vec<(Dialect, Value)> = corpus("requests")
        .into_iter()
        .chain(corpus("responses"))
        .filter_map(|(d, b)| serde_json::from_slice(&b).ok().map(|v| (d, v)))
        .collect();
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    runner
        .run(
            &(
                any::<usize>(),
                proptest::collection::vec(any::<u32>(), 1..12),
            ),
            |(i, choices)| {
                let (d, v) = &bodies[i % bodies.len()];
                let mut v = v.clone();
                let mut it = choices.into_iter();
                for _ in 0..3 {
                    damage(&mut v, &mut it);
                }
                let bytes = serde_json::to_vec(&v).unwrap();
                for t in Dialect::ALL {
                    all_decoders(t, &bytes);
                }
                let _ = d;
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn damaged_recorded_streams_end_in_a_valid_grammar() {
    let streams = corpus("streams");
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        ..Config::default()
    });
    runner
        .run(
            &(any::<usize>(), any::<usize>(), any::<u8>(), 0u8..3),
            |(i, at, byte, how)| {
                let (d, bytes) = &streams[i % streams.len()];
                let mut b = bytes.clone();
                let at = at % (b.len() + 1);
                match how {
                    0 => b.truncate(at),
                    1 if at < b.len() => b[at] = byte,
                    _ => b.insert(at, byte),
                }
                for t in Dialect::ALL {
                    let mut l = Losses::new();
                    let mut tr = hub::StreamTranslator::new(*d, t, StreamOptions::default());
                    let mut out = Vec::new();
                    let _ = tr.push(&b, &mut out, &mut l);
                    let _ = tr.finish(&mut out, &mut l);
                    // Whatever the damage, the client receives a well-formed stream of its dialect.
                    let events = hub::decode_events(t, &out).unwrap();
                    if let Err(e) = hub::validate(t, &events) {
                        panic!(
                            "{d}→{t}: damaged input gave an invalid stream: {e}\n{}",
                            String::from_utf8_lossy(&out)
                        );
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
