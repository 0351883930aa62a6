//! The fault table: every upstream fault × every client and upstream dialect (the same-dialect
//! passthrough included) × stream and whole. The rule it checks is the gateway's promise:
//! the client sees either the upstream's complete answer or exactly one error ending — never
//! both, never a success after a fault — and exactly one usage record says what it saw.

use std::time::Duration;

use dragoman_accounting::Outcome;
use dragoman_model::Dialect;
use dragoman_testkit::Fault;
use futures_util::StreamExt;
use serde_json::Value;

use super::{KEY, body, path_and_body, start_with};

/// What the client saw.
#[derive(Debug, PartialEq)]
enum Seen {
    /// The whole answer, with its text.
    Complete(String),
    /// Exactly one error ending in the client's dialect, nothing after it.
    Error,
}

fn fault_prefix(d: Dialect) -> &'static str {
    match d {
        Dialect::Anthropic => "fa",
        Dialect::Chat => "fc",
        Dialect::Responses => "fr",
        Dialect::Gemini => "fg",
        Dialect::Bedrock => "fb",
    }
}

/// Judges a whole answer: a success body of the client's dialect, or its error envelope.
fn judge_whole(client: Dialect, status: u16, ct: &str, bytes: &[u8]) -> Result<Seen, String> {
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct}"));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if status >= 400 {
        let envelope = match client {
            Dialect::Anthropic => v["type"] == "error" && v["error"]["message"].is_string(),
            _ => v["error"]["message"].is_string(),
        };
        return if envelope {
            Ok(Seen::Error)
        } else {
            Err(format!(
                "status {status} without the dialect's error envelope: {v}"
            ))
        };
    }
    if status != 200 {
        return Err(format!("status {status}"));
    }
    let r = dragoman_translate::decode_response(client, bytes, &mut Default::default())
        .map_err(|e| format!("200 that is not a {client} response: {e}"))?;
    let text: String = r
        .content
        .iter()
        .filter_map(|p| match p {
            dragoman_model::Part::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    Ok(Seen::Complete(text))
}

/// Judges a stream: the dialect's grammar holds, and it ends either with its success terminal
/// (and no error anywhere) or with exactly one error ending and nothing after it.
fn judge_stream(client: Dialect, bytes: &[u8]) -> Result<Seen, String> {
    let events = dragoman_sse::decode_all(bytes).map_err(|e| format!("framing: {e}"))?;
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| e.event.as_deref() != Some("ping"))
        .collect();
    dragoman_translate::validate(client, &events)
        .map_err(|e| format!("grammar: {e} in {}", String::from_utf8_lossy(bytes)))?;
    let is_error = |e: &dragoman_sse::Event| match client {
        Dialect::Anthropic => e.event.as_deref() == Some("error"),
        Dialect::Chat | Dialect::Gemini => e.data.contains("\"error\""),
        Dialect::Responses => {
            matches!(e.event.as_deref(), Some("error") | Some("response.failed"))
        }
        Dialect::Bedrock => e.name().ends_with("Exception"),
    };
    let is_success = |e: &dragoman_sse::Event| match client {
        Dialect::Anthropic => e.event.as_deref() == Some("message_stop"),
        Dialect::Chat => e.data.trim() == "[DONE]",
        Dialect::Responses => e.event.as_deref() == Some("response.completed"),
        Dialect::Gemini => e.data.contains("\"finishReason\""),
        Dialect::Bedrock => e.name() == "metadata",
    };
    let errors: Vec<usize> = (0..events.len())
        .filter(|&i| is_error(&events[i]))
        .collect();
    let successes = events.iter().filter(|e| is_success(e)).count();
    match (errors.first(), successes) {
        (None, 1) if events.last().is_some_and(is_success) => {
            let canon = dragoman_translate::decode_stream(client, bytes)
                .map_err(|e| format!("decode: {e}"))?;
            let text: String = canon
                .iter()
                .filter_map(|e| match e {
                    dragoman_model::StreamEvent::BlockDelta {
                        delta: dragoman_model::Delta::Text(t),
                        ..
                    } => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            Ok(Seen::Complete(text))
        }
        (Some(&first), 0) => {
            // One ending: Responses' `error` may be followed by its `response.failed`.
            let tail = &events[first..];
            let one = match client {
                Dialect::Responses => {
                    tail.len() == 1
                        || (tail.len() == 2
                            && tail[0].event.as_deref() == Some("error")
                            && tail[1].event.as_deref() == Some("response.failed"))
                }
                _ => tail.len() == 1,
            };
            if one {
                Ok(Seen::Error)
            } else {
                Err(format!(
                    "more after the error ending: {}",
                    String::from_utf8_lossy(bytes)
                ))
            }
        }
        _ => Err(format!(
            "{} errors and {successes} success terminals: {}",
            errors.len(),
            String::from_utf8_lossy(bytes)
        )),
    }
}

/// What the client must see for `fault`, and the record's outcome.
fn expected(fault: Fault) -> (Seen, Outcome) {
    match fault {
        Fault::PauseMidEvent => (Seen::Complete("Hello from the mock.".into()), Outcome::Ok),
        Fault::Hang => (Seen::Error, Outcome::Timeout),
        _ => (Seen::Error, Outcome::UpstreamError),
    }
}

#[tokio::test]
async fn every_fault_gives_the_whole_answer_or_exactly_one_error_ending() {
    let h = start_with("  max_upstream_body_bytes: 262144\n", true, true).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut cases = Vec::new();
    for fault in Fault::ALL {
        for up in Dialect::ALL {
            for stream in [false, true] {
                if !fault.applies(up, stream) {
                    continue;
                }
                for client in Dialect::CLIENTS {
                    cases.push((fault, up, stream, client));
                }
            }
        }
    }
    let url = h.url.clone();
    let results: Vec<_> = futures_util::stream::iter(cases)
        .map(|(fault, up, stream, client)| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let model = format!("{}/fault/{}", fault_prefix(up), fault.name());
                let (p, b) = path_and_body(client, &body(client, &model, stream));
                let r = http
                    .post(format!("{url}{p}"))
                    .header("authorization", format!("Bearer {KEY}"))
                    .header("anthropic-version", "2023-06-01")
                    .json(&b)
                    .send()
                    .await;
                let tag = format!("{} {client}<-{up} stream={stream}", fault.name());
                let seen = match r {
                    Err(e) => Err(format!("request failed: {e}")),
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let id = r
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        let ct = r
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        match r.bytes().await {
                            Err(e) => Err(format!("body did not end cleanly: {e}")),
                            Ok(b) => {
                                let judged = if stream && status == 200 {
                                    judge_stream(client, &b)
                                } else {
                                    judge_whole(client, status, &ct, &b)
                                };
                                judged.map(|s| (s, id))
                            }
                        }
                    }
                };
                (tag, fault, seen)
            }
        })
        // Bounded so that the 1 MiB bodies of `oversized` arrive within the deployments'
        // 3 s timeout on two cores in a debug build.
        .buffer_unordered(12)
        .collect()
        .await;
    let mut failures = Vec::new();
    let mut ids = Vec::new();
    for (tag, fault, seen) in &results {
        let (want, outcome) = expected(*fault);
        match seen {
            Ok((s, id)) if *s == want => match id {
                Some(id) => ids.push((tag.clone(), id.clone(), outcome)),
                None => failures.push(format!("{tag}: no x-request-id")),
            },
            Ok((s, _)) => failures.push(format!("{tag}: saw {s:?}, want {want:?}")),
            Err(e) => failures.push(format!("{tag}: {e}")),
        }
    }
    let rows = h.records(results.len()).await;
    for (tag, id, outcome) in &ids {
        let recs: Vec<_> = rows.iter().filter(|r| &r.request_id == id).collect();
        match recs.as_slice() {
            [r] if r.outcome == *outcome => {}
            [r] => failures.push(format!("{tag}: recorded {:?}, want {outcome:?}", r.outcome)),
            _ => failures.push(format!("{tag}: {} records", recs.len())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases broke the rule:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n")
    );
    h.shutdown().await;
}
