//! Every Bedrock recording in test_data/bedrock decodes, and survives decode → encode →
//! decode with content, signatures and usage buckets unchanged; recorded streams go through the
//! binary framing, the stream codecs and the grammar check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dragoman_bedrock::*;
use dragoman_model::{ErrorKind, Losses, Part, StopReason, StreamEvent, StreamOptions, collect};
use serde_json::Value;

fn files(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!(
        "{}/../../test_data/bedrock/{kind}",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "{dir} is empty");
    v
}

fn find<'a>(v: &'a [(String, Vec<u8>)], part: &str) -> &'a [u8] {
    &v.iter().find(|(n, _)| n.contains(part)).unwrap().1
}

#[test]
fn requests_decode_and_round_trip() {
    for (name, body) in files("requests") {
        let mut losses = Losses::new();
        let req = decode_request(&body, &mut losses).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(req.model.is_empty() && !req.stream, "{name}");
        assert!(!req.messages.is_empty(), "{name}");
        let mut enc_losses = Losses::new();
        let wire = encode_request(&req, &mut enc_losses);
        let again = decode_request(wire.to_string().as_bytes(), &mut Losses::new()).unwrap();
        assert_eq!(again, req, "{name}: {}", wire);
        assert!(
            enc_losses.is_empty(),
            "{name}: {:?}",
            enc_losses.iter().collect::<Vec<_>>()
        );
        // Every block of the recording comes back (cache points, documents, reasoning, tools).
        let orig: Value = serde_json::from_slice(&body).unwrap();
        for key in ["messages", "system"] {
            let count = |v: &Value| {
                v.get(key)
                    .and_then(Value::as_array)
                    .map(|ms| {
                        ms.iter()
                            .map(|m| {
                                m.get("content")
                                    .and_then(Value::as_array)
                                    .map_or(1, Vec::len)
                            })
                            .sum::<usize>()
                    })
                    .unwrap_or(0)
            };
            assert_eq!(count(&wire), count(&orig), "{name}: {key}");
        }
    }
}

#[test]
fn signatures_come_back_byte_identical() {
    let reqs = files("requests");
    let body = find(&reqs, "thinking_part_anthropic.2");
    let orig: Value = serde_json::from_slice(body).unwrap();
    let sig = orig["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"]
        .as_str()
        .unwrap();
    let req = decode_request(body, &mut Losses::new()).unwrap();
    let Part::Reasoning { seal: Some(s), .. } = &req.messages[1].content[0] else {
        panic!("no sealed reasoning: {:?}", req.messages[1]);
    };
    assert_eq!(s.payload, sig);
    let wire = encode_request(&req, &mut Losses::new());
    assert_eq!(
        wire["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]["signature"],
        sig
    );
    assert_eq!(
        wire["additionalModelRequestFields"],
        serde_json::json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
}

#[test]
fn responses_decode_and_round_trip() {
    for (name, body) in files("responses") {
        let mut losses = Losses::new();
        let resp = decode_response(&body, &mut losses).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            resp.id.starts_with("msg_bdrk_") && resp.model.is_empty(),
            "{name}"
        );
        assert_eq!(check_response(&body), Ok(resp.usage), "{name}");
        assert_eq!(decode_response_usage(&body), Some(resp.usage), "{name}");
        let mut enc_losses = Losses::new();
        let wire = encode_response(&resp, &mut enc_losses);
        assert!(enc_losses.is_empty(), "{name}: {enc_losses:?}");
        let again = decode_response(wire.to_string().as_bytes(), &mut Losses::new()).unwrap();
        assert_eq!(again.content, resp.content, "{name}");
        assert_eq!(again.stop, resp.stop, "{name}");
        assert_eq!(again.usage, resp.usage, "{name}");
        assert_eq!(again.extensions, resp.extensions, "{name}");
        let orig: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(wire["stopReason"], orig["stopReason"], "{name}");
        for k in [
            "inputTokens",
            "outputTokens",
            "totalTokens",
            "cacheReadInputTokens",
            "cacheWriteInputTokens",
            "cacheDetails",
        ] {
            assert_eq!(wire["usage"][k], orig["usage"][k], "{name}: usage.{k}");
        }
        // The same bytes give the same id.
        assert_eq!(
            decode_response(&body, &mut Losses::new()).unwrap().id,
            resp.id
        );
    }
}

#[test]
fn cache_buckets_are_exact() {
    let rs = files("responses");
    let r = decode_response(
        find(&rs, "cache_messages_with_document_as_last_content.2"),
        &mut Losses::new(),
    )
    .unwrap();
    assert_eq!(r.usage.input_uncached, Some(3));
    assert_eq!(r.usage.cache_read, Some(1712));
    assert_eq!(r.usage.cache_write, Some(236));
    assert_eq!(r.usage.cache_write_5m, Some(236));
    assert_eq!(r.usage.cache_write_1h, None);
    assert_eq!(r.usage.output, Some(121));
    assert_eq!(r.usage.input_total(), Some(1951));
    // Nova reports no cache keys: not reported, not zero.
    let nova = decode_response(find(&rs, "test_bedrock_model.json"), &mut Losses::new()).unwrap();
    assert_eq!(nova.usage.cache_read, None);
    assert_eq!(nova.usage.cache_write, None);
}

#[test]
fn cache_points_become_markers() {
    let reqs = files("requests");
    let req = decode_request(find(&reqs, "cache_write_and_read.1"), &mut Losses::new()).unwrap();
    let marked = |p: &Part| match p {
        Part::Text { cache_control, .. } => cache_control.is_some(),
        _ => false,
    };
    assert!(marked(&req.system[0]));
    assert_eq!(
        req.messages[0].content.iter().filter(|p| marked(p)).count(),
        2
    );
    assert!(req.tools.iter().any(|t| matches!(
        t,
        dragoman_model::Tool::Function {
            cache_control: Some(_),
            ..
        }
    )));
}

fn stream_events(bytes: &[u8]) -> Vec<StreamEvent> {
    let frames = dragoman_eventstream::decode_all(bytes).unwrap();
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for f in &frames {
        dec.push(f, &mut out).unwrap();
    }
    dec.finish(&mut out);
    out
}

fn without_id(mut evs: Vec<StreamEvent>) -> Vec<StreamEvent> {
    for e in &mut evs {
        if let StreamEvent::MessageStart { id, .. } = e {
            id.clear();
        }
    }
    evs
}

#[test]
fn recorded_streams_decode_reencode_and_validate() {
    for (name, bytes) in files("streams") {
        let frames = dragoman_eventstream::decode_all(&bytes).unwrap();
        validate(&frames).unwrap_or_else(|e| panic!("{name}: recorded stream invalid: {e}"));
        let events = stream_events(&bytes);
        if name.contains("error-exception") {
            let [StreamEvent::Error { error }] = events.as_slice() else {
                panic!("{name}: {events:?}");
            };
            assert_eq!(error.kind, ErrorKind::Server);
            assert_eq!(error.message, "Model Stream Error");
        } else {
            collect(&events).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        let mut enc = StreamEncoder::new(StreamOptions::default());
        let mut out = Vec::new();
        let mut losses = Losses::new();
        for e in &events {
            enc.push(e, &mut out, &mut losses);
        }
        enc.finish(&mut out, &mut losses);
        validate(&out).unwrap_or_else(|e| panic!("{name}: encoder output invalid: {e}"));
        let bytes2 = dragoman_eventstream::encode_all(&out);
        assert_eq!(
            without_id(stream_events(&bytes2)),
            without_id(events),
            "{name}"
        );
    }
}

#[test]
fn recorded_reasoning_streams_keep_their_seals() {
    let ss = files("streams");
    let r = collect(&stream_events(find(&ss, "thinking_part_stream"))).unwrap();
    let Part::Reasoning {
        text,
        seal: Some(s),
    } = &r.content[0]
    else {
        panic!("{:?}", r.content);
    };
    assert!(!text.is_empty() && !s.payload.is_empty());
    let red = collect(&stream_events(find(&ss, "redacted_stream"))).unwrap();
    let sealed: Vec<_> = red
        .content
        .iter()
        .filter(|p| matches!(p, Part::Reasoning { seal: Some(s), .. } if s.kind == dragoman_model::SealKind::Redacted))
        .collect();
    assert_eq!(sealed.len(), 2, "{:?}", red.content);
    // Tool streams: arguments assembled from fragments, stop reason reconciled.
    let tool = collect(&stream_events(find(&ss, "iter_stream.1"))).unwrap();
    assert_eq!(tool.stop, StopReason::ToolUse);
    let call = tool
        .content
        .iter()
        .find_map(|p| match p {
            Part::ToolCall { arguments, .. } => Some(arguments.clone()),
            _ => None,
        })
        .unwrap();
    serde_json::from_str::<Value>(&call).unwrap();
    let live = collect(&stream_events(find(&ss, "issue-18994"))).unwrap();
    assert!(live.usage.input_uncached.is_some() && live.usage.output.is_some());
}

#[test]
fn recorded_errors_decode() {
    for (name, body) in files("errors") {
        let v: Value = serde_json::from_slice(&body).unwrap();
        let status = v["status"].as_u64().map(|s| s as u16);
        let inner = v["body"].to_string();
        let mut e = decode_error(status, inner.as_bytes());
        if let Some(t) = v.get("error_type").and_then(Value::as_str) {
            e.kind = error_kind_from_type(t, status);
            assert_eq!(error_type_name(t), "ValidationException");
        }
        assert_eq!(e.kind, ErrorKind::InvalidRequest, "{name}");
        assert!(!e.message.is_empty(), "{name}");
        let (s, b) = encode_error(&e);
        assert_eq!(s, 400);
        assert_eq!(b["message"], e.message.as_str());
    }
}

#[test]
fn count_request_decodes() {
    let c = files("count");
    let req = decode_count_request(&c[0].1, &mut Losses::new()).unwrap();
    assert!(!req.messages.is_empty());
    assert!(!req.tools.is_empty());
    assert_eq!(
        encode_token_count(375),
        serde_json::json!({"inputTokens": 375})
    );
}
