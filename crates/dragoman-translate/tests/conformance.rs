//! The conformance matrix: every recorded response and stream of every dialect, carried into
//! every dialect and read back, keeps its text, tool calls, reasoning, usage and stop reason,
//! and every translated stream obeys the target's grammar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dragoman_model::{Dialect, Losses, StreamEvent, StreamOptions, collect};
use dragoman_translate as hub;

#[test]
fn every_recorded_stream_translates_into_every_dialect() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for src in Dialect::ALL {
        for path in files(src, "streams") {
            let bytes = std::fs::read(&path).unwrap();
            let events = match hub::decode_stream(src, &bytes) {
                Ok(e) => e,
                Err(e) => {
                    failures.push(format!("{src} {}: decode: {e}", name(&path)));
                    continue;
                }
            };
            let source = collect(&events);
            for target in Dialect::ALL {
                checked += 1;
                let tag = format!("{src}→{target} {}", name(&path));
                let mut losses = Losses::new();
                let opts = StreamOptions {
                    input_estimate: Some(100),
                    include_usage: true,
                };
                let out = match hub::translate_stream(src, target, &bytes, opts, &mut losses) {
                    Ok(o) => o,
                    Err(e) => {
                        failures.push(format!("{tag}: translate: {e}"));
                        continue;
                    }
                };
                let sse_events = hub::decode_events(target, &out).unwrap();
                if let Err(e) = hub::validate(target, &sse_events) {
                    failures.push(format!("{tag}: grammar: {e}"));
                    continue;
                }
                let back = match hub::decode_stream(target, &out) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push(format!("{tag}: re-decode: {e}"));
                        continue;
                    }
                };
                match (&source, collect(&back)) {
                    (Ok(s), Ok(d)) => {
                        if let Err(e) = compare_responses(target, s, &d) {
                            failures.push(format!("{tag}: {e}"));
                        }
                    }
                    (Err(_), Err(_)) => {
                        if !matches!(back.last(), Some(StreamEvent::Error { .. })) {
                            failures
                                .push(format!("{tag}: failed stream did not end with an error"));
                        }
                    }
                    // An answer with nothing a Responses client can hold (no parts, or only
                    // parts reported as dropped) reaches it as the upstream gave it, but read
                    // back from a Responses upstream it is a fault: an empty `completed` would
                    // otherwise become a fabricated success.
                    (Ok(_), Err(e))
                        if target == Dialect::Responses
                            && e.message.contains("no output")
                            && !sse_events
                                .iter()
                                .any(|ev| ev.data.contains("response.output_item.added")) => {}
                    (Ok(_), Err(e)) => failures.push(format!(
                        "{tag}: succeeded upstream, failed through target: {e:?}"
                    )),
                    (Err(e), Ok(_)) => {
                        failures.push(format!("{tag}: failure became success ({e:?})"))
                    }
                }
            }
        }
    }
    assert!(checked > 400, "only {checked} pairs checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_recorded_response_translates_into_every_dialect() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for src in Dialect::ALL {
        for path in files(src, "responses") {
            let bytes = std::fs::read(&path).unwrap();
            let mut losses = Losses::new();
            let source = match hub::decode_response(src, &bytes, &mut losses) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{src} {}: decode: {e}", name(&path)));
                    continue;
                }
            };
            for target in Dialect::ALL {
                checked += 1;
                let tag = format!("{src}→{target} {}", name(&path));
                let out = hub::encode_response(target, &source, &mut losses);
                let bytes = serde_json::to_vec(&out).unwrap();
                match hub::decode_response(target, &bytes, &mut Losses::new()) {
                    Ok(back) => {
                        if let Err(e) = compare_responses(target, &source, &back) {
                            failures.push(format!("{tag}: {e}"));
                        }
                    }
                    Err(e) => failures.push(format!("{tag}: re-decode: {e}")),
                }
                // The streamed form of the same response must say the same thing.
                let events = dragoman_model::response_events(&source);
                let sse = hub::encode_stream(
                    target,
                    &events,
                    StreamOptions::default(),
                    &mut Losses::new(),
                );
                if let Err(e) = hub::validate(target, &sse) {
                    failures.push(format!("{tag} (as stream): grammar: {e}"));
                }
            }
        }
    }
    assert!(checked > 400, "only {checked} pairs checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Renames call ids to their position among the calls, in the calls and in the results.
fn positional(calls: &mut [Call], results: &mut [String]) {
    let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
    for (i, c) in calls.iter_mut().enumerate() {
        c.id = format!("#{i}");
    }
    for r in results {
        *r = ids
            .iter()
            .position(|id| id == r)
            .map_or_else(|| "?".into(), |i| format!("#{i}"));
    }
}

#[test]
fn every_recorded_request_translates_into_every_dialect() {
    use dragoman_model::{Part, Role};
    let mut failures = Vec::new();
    let mut checked = 0;
    let texts = |r: &dragoman_model::Request, role: Role| -> String {
        r.messages
            .iter()
            .filter(|m| m.role == role)
            .map(|m| visible_text(&m.content))
            .collect()
    };
    let results = |r: &dragoman_model::Request| -> Vec<String> {
        r.messages
            .iter()
            .flat_map(|m| m.content.iter())
            .filter_map(|p| match p {
                Part::ToolResult { call_id, .. } => Some(call_id.clone()),
                _ => None,
            })
            .collect()
    };
    let all_calls = |r: &dragoman_model::Request| -> Vec<Call> {
        r.messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .flat_map(|m| calls(&m.content))
            .collect()
    };
    for src in Dialect::ALL {
        for path in files(src, "requests") {
            let bytes = std::fs::read(&path).unwrap();
            let source = match hub::decode_request(src, &bytes, &mut Losses::new()) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{src} {}: decode: {e}", name(&path)));
                    continue;
                }
            };
            for target in Dialect::ALL {
                checked += 1;
                let tag = format!("{src}→{target} {}", name(&path));
                let out = hub::encode_request(target, &source, &mut Losses::new());
                let back = match hub::decode_request(
                    target,
                    &serde_json::to_vec(&out).unwrap(),
                    &mut Losses::new(),
                ) {
                    Ok(b) => b,
                    Err(e) => {
                        failures.push(format!("{tag}: re-decode: {e}"));
                        continue;
                    }
                };
                if target.model_in_body() && back.model != source.model {
                    failures.push(format!("{tag}: model changed"));
                }
                for role in [Role::User, Role::Assistant] {
                    if texts(&source, role) != texts(&back, role) {
                        failures.push(format!("{tag}: {role:?} text differs"));
                    }
                }
                let (mut a, mut b) = (all_calls(&source), all_calls(&back));
                let (mut ra, mut rb) = (results(&source), results(&back));
                if target == Dialect::Gemini {
                    // Gemini requests carry no ids of other providers (Gemini pairs a result
                    // with its call by order and name): compare which call each result answers.
                    positional(&mut a, &mut ra);
                    positional(&mut b, &mut rb);
                }
                let custom = a.iter().any(|c| c.kind == dragoman_model::ToolKind::Custom);
                let wrapped = custom && !target.has_freeform_tools();
                if !wrapped && a != b {
                    failures.push(format!("{tag}: tool calls differ:\n  {a:?}\n  {b:?}"));
                }
                if ra != rb {
                    failures.push(format!("{tag}: tool result ids differ"));
                }
            }
        }
    }
    assert!(checked > 400, "only {checked} pairs checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_recorded_error_keeps_its_kind_in_every_dialect() {
    let mut failures = Vec::new();
    for src in Dialect::ALL {
        for path in files(src, "errors") {
            let doc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let status = doc["status"].as_u64().map(|s| s as u16);
            let body = serde_json::to_vec(&doc["body"]).unwrap();
            let err = hub::decode_error(src, status, &body);
            for target in Dialect::ALL {
                let (st, out) = hub::encode_error(target, &err);
                let back = hub::decode_error(target, Some(st), &serde_json::to_vec(&out).unwrap());
                // Bedrock has no billing error: it answers AccessDeniedException.
                let tolerated = target == Dialect::Bedrock
                    && err.kind == dragoman_model::ErrorKind::Billing
                    && back.kind == dragoman_model::ErrorKind::Permission;
                if (back.kind != err.kind && !tolerated) || back.message != err.message {
                    failures.push(format!(
                        "{src}→{target} {}: {err:?} became {back:?}",
                        name(&path)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_usage_tap_agrees_with_the_full_decoder() {
    let mut checked = 0;
    for d in Dialect::ALL {
        for path in files(d, "responses") {
            let bytes = std::fs::read(&path).unwrap();
            let full = hub::decode_response(d, &bytes, &mut Losses::new())
                .unwrap()
                .usage;
            let tap = hub::decode_response_usage(d, &bytes).unwrap_or_default();
            assert_eq!(tap, full, "{d} {}", name(&path));
            checked += 1;
        }
    }
    assert!(checked > 150);
}

/// A span's summary of a whole answer (id, model, stop reason) is what the full decoder says,
/// for every recorded response of every dialect.
#[test]
fn the_response_summary_agrees_with_the_full_decoder() {
    let mut checked = 0;
    for d in Dialect::ALL {
        for path in files(d, "responses") {
            let bytes = std::fs::read(&path).unwrap();
            let full = hub::decode_response(d, &bytes, &mut Losses::new()).unwrap();
            let head = hub::response_summary(d, &bytes)
                .unwrap_or_else(|| panic!("{d} {}: no summary", name(&path)));
            let what = format!("{d} {}", name(&path));
            assert_eq!(head.id.unwrap_or_default(), full.id, "{what}");
            assert_eq!(head.model.unwrap_or_default(), full.model, "{what}");
            assert_eq!(head.stop, Some(full.stop), "{what}");
            checked += 1;
        }
    }
    assert!(checked > 150);
}
