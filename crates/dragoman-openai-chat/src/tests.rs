//! Tests on hand-written cases and on the recordings under `test_data/chat/`: every recording
//! decodes, re-encodes into something the grammar accepts, and decodes back to the same thing.

use std::path::{Path, PathBuf};

use dragoman_model::*;
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::*;

fn data_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test_data/chat")
        .join(sub)
}

fn files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {sub} recordings");
    v
}

/// Chat encoders write 0 for cache reads and reasoning that were not reported (the fields are
/// what clients read), so a re-decoded usage knows a 0 where the original knew nothing.
fn norm_usage(u: &mut Usage) {
    if u.input_total().is_some() && u.cache_read.is_none() {
        u.cache_read = Some(0);
    }
    if u.output.is_some() && u.reasoning.is_none() {
        u.reasoning = Some(0);
    }
}

/// Also: an error chunk renders a default `type` where the canonical error had none, and a
/// `finish_reason` that an error overtook (blocks closed, no `MessageDelta`) has no canonical
/// trace, so block stops are not compared in error-terminated streams.
fn norm_events(events: &mut Vec<StreamEvent>) {
    let errored = matches!(events.last(), Some(StreamEvent::Error { .. }));
    if errored {
        events.retain(|e| !matches!(e, StreamEvent::BlockStop { .. }));
    }
    for e in events.iter_mut() {
        match e {
            StreamEvent::MessageDelta { usage, .. } => norm_usage(usage),
            StreamEvent::Error { error } => error.type_name = None,
            _ => {}
        }
    }
}

fn decode_events(events: &[Event]) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for e in events {
        d.push(e, &mut out).unwrap();
    }
    d.finish(&mut out);
    out
}

fn decode_sse(bytes: &[u8]) -> Vec<StreamEvent> {
    decode_events(&dragoman_sse::decode_all(bytes).unwrap())
}

fn encode_events(events: &[StreamEvent], include_usage: bool) -> (Vec<Event>, Losses) {
    let mut enc = StreamEncoder::new(StreamOptions {
        input_estimate: None,
        include_usage,
    });
    let mut out = Vec::new();
    let mut losses = Losses::new();
    for e in events {
        enc.push(e, &mut out, &mut losses);
    }
    enc.finish(&mut out, &mut losses);
    (out, losses)
}

fn chunk(v: Value) -> Event {
    Event::data(v.to_string())
}

fn delta_chunk(delta: Value, finish: Option<&str>) -> Event {
    chunk(
        json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

fn done() -> Event {
    Event::data("[DONE]")
}

// ---------------------------------------------------------------------------------------------
// Recordings
// ---------------------------------------------------------------------------------------------

#[test]
fn recorded_requests_round_trip_without_losses() {
    for path in files("requests", "json") {
        let body = std::fs::read(&path).unwrap();
        let mut l1 = Losses::new();
        let req =
            decode_request(&body, &mut l1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(l1.is_empty(), "{}: {:?}", path.display(), l1);
        let mut l2 = Losses::new();
        let enc = encode_request(&req, &mut l2);
        assert!(l2.is_empty(), "{}: {:?}", path.display(), l2);
        let mut back = decode_request(enc.to_string().as_bytes(), &mut Losses::new()).unwrap();
        // The one intended asymmetry: a streamed request always asks for usage upstream.
        if req.stream && !req.extensions.iter().any(|e| e.key == "stream_options") {
            let pos = back
                .extensions
                .iter()
                .position(|e| e.key == "stream_options")
                .unwrap();
            assert_eq!(
                back.extensions.remove(pos).value,
                json!({"include_usage": true})
            );
        }
        let mut req = req;
        req.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        back.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(req, back, "{}", path.display());
    }
}

fn sorted_exts(r: &mut Response) {
    r.extensions.sort_by(|a, b| a.key.cmp(&b.key));
}

#[test]
fn recorded_responses_round_trip() {
    for path in files("responses", "json") {
        let body = std::fs::read(&path).unwrap();
        let mut l1 = Losses::new();
        let mut resp =
            decode_response(&body, &mut l1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut l2 = Losses::new();
        let enc = encode_response(&resp, &mut l2);
        assert!(l2.is_empty(), "{}: {:?}", path.display(), l2);
        let mut back = decode_response(enc.to_string().as_bytes(), &mut Losses::new()).unwrap();
        norm_usage(&mut resp.usage);
        norm_usage(&mut back.usage);
        sorted_exts(&mut resp);
        sorted_exts(&mut back);
        assert_eq!(resp, back, "{}", path.display());
    }
}

#[test]
fn recorded_response_details() {
    let read = |name: &str| {
        let body = std::fs::read(data_dir("responses").join(name)).unwrap();
        decode_response(&body, &mut Losses::new()).unwrap()
    };
    let r = read("pydantic-ai__test_max_completion_tokens_o3-mini.json");
    assert_eq!((r.usage.output, r.usage.reasoning), (Some(87), Some(64)));
    let r = read("vercel-ai__azure-deepseek-reasoning.1.json");
    assert!(matches!(&r.content[0], Part::Reasoning { seal: None, .. }));
    let r = read("pydantic-ai__test_compatible_api_with_tool_calls_without_id.1.json");
    assert_eq!(r.stop, StopReason::ToolUse);
    assert!(
        r.content
            .iter()
            .any(|p| matches!(p, Part::ToolCall { name, .. } if name == "get_current_time"))
    );
}

#[test]
fn recorded_streams_decode_reencode_and_validate() {
    for path in files("streams", "sse") {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let events = decode_sse(&bytes);
        match events.last() {
            Some(StreamEvent::Error { .. }) => {}
            _ => {
                collect(&events).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }
        let include_usage = events
            .iter()
            .any(|e| matches!(e, StreamEvent::MessageDelta { usage, .. } if !usage.is_empty()));
        let (chat, _) = encode_events(&events, include_usage);
        validate(&chat).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut again = decode_events(&chat);
        let mut orig = events.clone();
        norm_events(&mut orig);
        norm_events(&mut again);
        assert_eq!(orig, again, "{name}");

        // Splitting the bytes anywhere changes nothing.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
        for _ in 0..3 {
            let mut sse = dragoman_sse::Decoder::new();
            let mut raw = Vec::new();
            let mut pos = 0;
            while pos < bytes.len() {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let step = 1 + (seed >> 33) as usize % 97;
                let end = (pos + step).min(bytes.len());
                sse.push(&bytes[pos..end], &mut raw).unwrap();
                pos = end;
            }
            sse.finish(&mut raw).unwrap();
            assert_eq!(decode_events(&raw), events, "{name} (split)");
        }
    }
}

#[test]
fn recorded_stream_errors_become_error_events() {
    for name in [
        "pydantic-ai__test_openrouter_stream_error.sse",
        "pydantic-ai__test_tool_use_failed_error_streaming.1.sse",
    ] {
        let events = decode_sse(&std::fs::read(data_dir("streams").join(name)).unwrap());
        let Some(StreamEvent::Error { error }) = events.last() else {
            panic!("{name}: {events:?}");
        };
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "{name}");
        assert!(!events.iter().any(|e| matches!(e, StreamEvent::MessageStop)));
    }
}

#[test]
fn recorded_azure_preamble_and_index_one_tool_calls() {
    let events = decode_sse(
        &std::fs::read(data_dir("streams").join("vercel-ai__azure-model-router.1.sse")).unwrap(),
    );
    let StreamEvent::MessageStart { id, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert!(id.starts_with("chatcmpl-"));
    let events = decode_sse(
        &std::fs::read(data_dir("streams").join("vercel-ai__anthropic-fallback-tool-call.sse"))
            .unwrap(),
    );
    let r = collect(&events).unwrap();
    assert_eq!(r.stop, StopReason::ToolUse);
    assert!(
        matches!(&r.content[1], Part::ToolCall { arguments, .. } if arguments == "{\"path\": \"a.txt\"}")
    );
}

#[test]
fn recorded_errors_have_the_right_kinds() {
    for path in files("errors", "json") {
        let name = path.display().to_string();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let status = v["status"].as_u64().map(|s| s as u16);
        let err = decode_error(status, v["body"].to_string().as_bytes());
        let want = if name.contains("model_name_suggestion") {
            ErrorKind::NotFound
        } else if name.contains("openrouter_errors") {
            ErrorKind::RateLimited
        } else {
            ErrorKind::InvalidRequest
        };
        assert_eq!(err.kind, want, "{name}");
        let (st, body) = encode_error(&err);
        assert!((400..600).contains(&st), "{name}: {st}");
        assert!(!body.to_string().contains("\"None\""));
        assert_eq!(body["error"]["message"], json!(err.message));
    }
}

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

#[test]
fn stream_usage_chunk_is_split_into_buckets() {
    let events = decode_events(&[
        delta_chunk(json!({"role": "assistant", "content": "hi"}), None),
        delta_chunk(json!({}), Some("stop")),
        chunk(
            json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [], "usage": {"prompt_tokens": 1234, "completion_tokens": 50,
            "total_tokens": 1284, "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 20}}}),
        ),
        done(),
    ]);
    let usage = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::MessageDelta { usage, .. } => Some(*usage),
            _ => None,
        })
        .unwrap();
    assert_eq!(usage.input_uncached, Some(210));
    assert_eq!(usage.cache_read, Some(1024));
    assert_eq!(usage.cache_write, None);
    assert_eq!(usage.output, Some(50));
    assert_eq!(usage.reasoning, Some(20));
}

#[test]
fn usage_encodes_inclusive_prompt_tokens() {
    let u = Usage {
        input_uncached: Some(3),
        cache_read: Some(4004),
        cache_write: Some(10),
        output: Some(9),
        ..Usage::default()
    };
    let v = usage::encode(&u, None);
    assert_eq!(v["prompt_tokens"], 4017);
    assert_eq!(v["prompt_tokens_details"]["cached_tokens"], 4004);
    assert_eq!(v["prompt_tokens_details"]["cache_write_tokens"], 10);
    assert_eq!(v["completion_tokens"], 9);
    assert_eq!(v["total_tokens"], 4026);
    assert_eq!(v["completion_tokens_details"]["reasoning_tokens"], 0);
    // And through the stream encoder's usage chunk.
    let (chat, _) = encode_events(
        &[
            StreamEvent::MessageStart {
                id: "msg_1".into(),
                model: "m".into(),
                usage: Usage::default(),
            },
            StreamEvent::MessageDelta {
                stop: StopReason::EndTurn,
                usage: u,
            },
            StreamEvent::MessageStop,
        ],
        true,
    );
    validate(&chat).unwrap();
    let usage_chunk: Value = serde_json::from_str(&chat[chat.len() - 2].data).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 4017);
    assert_eq!(chat.last().unwrap().data, "[DONE]");
}

// ---------------------------------------------------------------------------------------------
// Stream decoding traps
// ---------------------------------------------------------------------------------------------

fn tool_calls(events: &[StreamEvent]) -> Vec<(String, String, String)> {
    collect(events)
        .unwrap()
        .content
        .into_iter()
        .filter_map(|p| match p {
            Part::ToolCall {
                id,
                name,
                arguments,
                ..
            } => Some((id, name, arguments)),
            _ => None,
        })
        .collect()
}

#[test]
fn interleaved_parallel_calls_are_separated_by_index() {
    let tc = |v: Value| delta_chunk(json!({"tool_calls": v}), None);
    let events = decode_events(&[
        delta_chunk(json!({"role": "assistant", "content": null}), None),
        tc(
            json!([{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}},
                  {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{\"y\""}}]),
        ),
        tc(json!([{"index": 0, "function": {"arguments": "{\"x\":"}}])),
        tc(json!([{"index": 1, "function": {"arguments": ":2}"}}])),
        tc(json!([{"index": 0, "function": {"arguments": "1}"}}])),
        delta_chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    assert_eq!(
        tool_calls(&events),
        vec![
            ("a".into(), "f".into(), "{\"x\":1}".into()),
            ("b".into(), "g".into(), "{\"y\":2}".into())
        ]
    );
    let (chat, _) = encode_events(&events, false);
    validate(&chat).unwrap();
    assert_eq!(decode_events(&chat), events);
}

#[test]
fn calls_all_at_index_zero_are_told_apart_by_id() {
    let tc = |v: Value| delta_chunk(json!({"tool_calls": v}), None);
    let events = decode_events(&[
        tc(json!([{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}])),
        tc(json!([{"index": 0, "id": "b", "function": {"name": "g", "arguments": "{\"q\""}}])),
        tc(json!([{"index": 0, "function": {"arguments": ":1}"}}])),
        delta_chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    assert_eq!(
        tool_calls(&events),
        vec![
            ("a".into(), "f".into(), "{}".into()),
            ("b".into(), "g".into(), "{\"q\":1}".into())
        ]
    );
}

#[test]
fn a_call_without_an_id_gets_a_stable_one_and_one_without_a_name_fails_the_stream() {
    let tc = |v: Value| delta_chunk(json!({"tool_calls": v}), None);
    let chunks = [
        tc(json!([{"index": 0, "function": {"name": "f", "arguments": "{\"a\""}}])),
        tc(json!([{"index": 0, "id": "", "function": {"arguments": ":1}"}}])),
        tc(json!([{"index": 1, "type": "function", "function": {"name": "g", "arguments": "{}"}}])),
        delta_chunk(json!({}), Some("tool_calls")),
        done(),
    ];
    let events = decode_events(&chunks);
    let calls = tool_calls(&events);
    assert_eq!(
        calls,
        vec![
            ("call_0".into(), "f".into(), "{\"a\":1}".into()),
            ("call_1".into(), "g".into(), "{}".into())
        ]
    );
    // The same stream decoded again gets the same ids: a replayed turn matches its results.
    assert_eq!(tool_calls(&decode_events(&chunks)), calls);
    // Both the borrowed fast path and the general one refuse a nameless call.
    for call in [
        json!([{"index": 0, "function": {"arguments": "{}"}}]),
        json!([{"index": 0, "type": "function", "function": {"name": "", "arguments": "{}"}, "extra": 1}]),
    ] {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        let err = d.push(&tc(call), &mut out).unwrap_err();
        assert!(err.to_string().contains("without a function name"), "{err}");
        assert!(
            !out.iter()
                .any(|e| matches!(e, StreamEvent::BlockStart { .. }))
        );
    }
}

#[test]
fn a_whole_message_call_without_an_id_gets_one_and_without_a_name_is_refused() {
    let body = |call: Value| {
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": null, "tool_calls": [call]}}]})
    };
    let mut losses = Losses::new();
    let ok = body(json!({"type": "function", "function": {"name": "f", "arguments": "{}"}}));
    let r = crate::decode_response(&serde_json::to_vec(&ok).unwrap(), &mut losses).unwrap();
    assert!(
        matches!(&r.content[0], Part::ToolCall { id, name, .. } if id == "call_0" && name == "f")
    );
    let nameless =
        body(json!({"id": "x", "type": "function", "function": {"name": "", "arguments": "{}"}}));
    assert!(crate::decode_response(&serde_json::to_vec(&nameless).unwrap(), &mut losses).is_err());
}

#[test]
fn empty_tool_call_lists_are_absent() {
    let events = decode_events(&[
        delta_chunk(
            json!({"role": "assistant", "content": "Hel", "tool_calls": []}),
            None,
        ),
        delta_chunk(json!({"content": "lo", "tool_calls": []}), None),
        delta_chunk(json!({"tool_calls": []}), Some("stop")),
        done(),
    ]);
    let r = collect(&events).unwrap();
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(r.content, vec![Part::text("Hello")]);
}

#[test]
fn stop_with_tool_calls_is_tool_use() {
    let events = decode_events(&[
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]}),
            None,
        ),
        delta_chunk(json!({}), Some("stop")),
        done(),
    ]);
    assert_eq!(collect(&events).unwrap().stop, StopReason::ToolUse);
    let body = json!({"id": "x", "object": "chat.completion", "model": "m", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": null, "tool_calls": [{"id": "a", "type": "function",
        "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "stop"}]});
    let r = decode_response(body.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(r.stop, StopReason::ToolUse);
}

#[test]
fn text_after_tool_call_opens_a_new_block() {
    let events = decode_events(&[
        delta_chunk(json!({"content": "a"}), None),
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]}),
            None,
        ),
        delta_chunk(json!({"content": "b"}), None),
        delta_chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    let r = collect(&events).unwrap();
    assert_eq!(r.content.len(), 3);
    assert_eq!(r.content[2], Part::text("b"));
}

#[test]
fn cut_stream_is_an_error_even_after_finish_reason() {
    let events = decode_events(&[
        delta_chunk(json!({"role": "assistant", "content": "hi"}), None),
        delta_chunk(json!({}), Some("stop")),
    ]);
    assert!(
        matches!(events.last(), Some(StreamEvent::Error { error }) if *error == ErrorBody::truncated_stream())
    );
    let (chat, _) = encode_events(&events, true);
    validate(&chat).unwrap();
    assert!(chat.iter().all(|e| e.data != "[DONE]"));
    let last: Value = serde_json::from_str(&chat.last().unwrap().data).unwrap();
    assert!(last["error"]["message"].is_string());
}

#[test]
fn upstream_error_chunk_is_terminal() {
    let events = decode_events(&[
        delta_chunk(json!({"role": "assistant", "content": "hi"}), None),
        chunk(json!({"id": "c1", "error": {"code": 400, "message": "Token limit reached"}})),
        done(),
    ]);
    let Some(StreamEvent::Error { error }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(error.message, "Token limit reached");
    assert_eq!(error.code.as_deref(), Some("400"));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::Error { .. }))
            .count(),
        1
    );
}

#[test]
fn malformed_chunk_names_the_event() {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    d.push(&delta_chunk(json!({"content": "x"}), None), &mut out)
        .unwrap();
    let err = d.push(&Event::data("{not json"), &mut out).unwrap_err();
    assert!(err.path.contains("event 1"), "{err}");
}

#[test]
fn reasoning_and_refusal_deltas_become_blocks() {
    let events = decode_events(&[
        delta_chunk(
            json!({"role": "assistant", "reasoning_content": "think"}),
            None,
        ),
        delta_chunk(json!({"reasoning": " more"}), None),
        delta_chunk(json!({"content": "answer"}), None),
        delta_chunk(json!({"refusal": "no"}), None),
        delta_chunk(json!({}), Some("stop")),
        done(),
    ]);
    let r = collect(&events).unwrap();
    assert_eq!(
        r.content,
        vec![
            Part::Reasoning {
                text: "think more".into(),
                seal: None
            },
            Part::text("answer"),
            Part::Refusal { text: "no".into() },
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Stream encoding
// ---------------------------------------------------------------------------------------------

#[test]
fn encoder_numbers_tool_calls_and_drops_what_chat_cannot_carry() {
    let events = vec![
        StreamEvent::MessageStart {
            id: "msg_1".into(),
            model: "claude".into(),
            usage: Usage::default(),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Reasoning {
                seal: None,
                id: None,
            },
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Reasoning("hmm".into()),
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Seal(ReasoningSeal::anthropic_signature("sig")),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::Opaque {
                dialect: Dialect::Anthropic,
                value: json!({"type": "server_tool_use"}),
            },
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::BlockStart {
            index: 2,
            block: BlockKind::ToolCall {
                id: "toolu_1".into(),
                name: "f".into(),
                kind: ToolKind::Function,
            },
        },
        StreamEvent::BlockDelta {
            index: 2,
            delta: Delta::Arguments("{\"a\":1}".into()),
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::MessageDelta {
            stop: StopReason::ToolUse,
            usage: Usage::default(),
        },
        StreamEvent::MessageStop,
    ];
    let (chat, losses) = encode_events(&events, false);
    validate(&chat).unwrap();
    assert!(losses.iter().any(|l| l.path == "content[0].seal"));
    assert!(losses.iter().any(|l| l.path == "content[1]"));
    let first: Value = serde_json::from_str(&chat[0].data).unwrap();
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(first["id"], "msg_1");
    let tool: Value = serde_json::from_str(&chat[2].data).unwrap();
    assert_eq!(tool["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
    assert_eq!(
        tool["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_1"
    );
    let fin: Value = serde_json::from_str(&chat[chat.len() - 2].data).unwrap();
    assert_eq!(fin["choices"][0]["finish_reason"], "tool_calls");
    assert!(chat.iter().all(|e| e.event.is_none()));
}

#[test]
fn validator_rejects_broken_streams() {
    let ok = [
        delta_chunk(json!({"role": "assistant", "content": ""}), None),
        delta_chunk(json!({}), Some("stop")),
        done(),
    ];
    validate(&ok).unwrap();
    // [DONE] without finish_reason.
    assert!(validate(&[delta_chunk(json!({"content": "x"}), None), done()]).is_err());
    // Delta after finish_reason.
    assert!(
        validate(&[
            ok[1].clone(),
            delta_chunk(json!({"content": "x"}), None),
            done()
        ])
        .is_err()
    );
    // Nothing after an error chunk, not even [DONE].
    let err = chunk(json!({"error": {"message": "x", "type": "server_error"}}));
    assert!(validate(&[ok[0].clone(), err.clone()]).is_ok());
    assert!(validate(&[ok[0].clone(), err, done()]).is_err());
    // No terminal.
    assert!(validate(&ok[..2]).is_err());
    // Named events.
    assert!(validate(&[Event::named("message", "[DONE]")]).is_err());
    // Tool call without id, and a changed id.
    let tc = |v: Value| delta_chunk(json!({"tool_calls": [v]}), None);
    assert!(validate(&[tc(json!({"index": 0, "function": {"arguments": "{}"}}))]).is_err());
    assert!(
        validate(&[
            tc(json!({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}})),
            tc(json!({"index": 0, "id": "b", "function": {"arguments": "{}"}})),
        ])
        .is_err()
    );
    // Invalid JSON arguments at a non-length finish.
    assert!(
        validate(&[
            tc(json!({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}})),
            delta_chunk(json!({}), Some("tool_calls")),
            done(),
        ])
        .is_err()
    );
    // Second role, id change.
    assert!(validate(&[ok[0].clone(), ok[0].clone()]).is_err());
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_requests_name_the_field() {
    let bad = |body: &str| decode_request(body.as_bytes(), &mut Losses::new()).unwrap_err();
    assert_eq!(bad(r#"{"model":"m","messages":{}}"#).path, "messages");
    assert_eq!(
        bad(r#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"r"}]}"#)
            .path,
        "messages[1].tool_call_id"
    );
    assert_eq!(bad("{nope").path, "body");
    assert_eq!(
        bad(r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#).path,
        "messages[0].content[0].image_url"
    );
}

#[test]
fn request_features_decode_and_round_trip() {
    let body = json!({
        "model": "gpt-5",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
            ], "name": "bob"},
            {"role": "assistant", "content": null, "reasoning_content": "why",
             "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "c2", "type": "custom", "custom": {"name": "g", "input": "raw"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "assistant", "content": "", "refusal": "no"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}},
            {"type": "custom", "custom": {"name": "g", "description": "free"}},
            {"type": "web_search"}
        ],
        "tool_choice": {"type": "custom", "custom": {"name": "g"}},
        "max_tokens": 100,
        "safety_identifier": "u1",
        "stop": "END",
        "reasoning_effort": "none",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
        "frequency_penalty": 0.5,
        "n": 2,
        "stream": true
    });
    let mut losses = Losses::new();
    let req = decode_request(body.to_string().as_bytes(), &mut losses).unwrap();
    assert!(losses.iter().any(|l| l.path == "n"));
    assert_eq!(req.max_tokens, Some(100));
    assert_eq!(req.user.as_deref(), Some("u1"));
    assert_eq!(req.stop, vec!["END".to_string()]);
    assert_eq!(req.reasoning.as_ref().unwrap().enabled, Some(false));
    assert_eq!(req.messages[0].role, Role::Developer);
    assert!(
        matches!(&req.messages[1].content[1], Part::Image { source: MediaSource::Base64 { media_type, .. }, .. } if media_type == "image/png")
    );
    assert!(matches!(&req.messages[1].content[2], Part::Audio { .. }));
    assert!(
        matches!(&req.messages[1].content[3], Part::Document { filename: Some(f), .. } if f == "a.pdf")
    );
    assert!(matches!(
        &req.messages[2].content[0],
        Part::Reasoning { .. }
    ));
    assert!(matches!(
        &req.messages[2].content[2],
        Part::ToolCall {
            kind: ToolKind::Custom,
            ..
        }
    ));
    assert_eq!(req.messages[3].role, Role::Tool);
    assert_eq!(req.messages[3].content.len(), 2);
    assert!(matches!(&req.tools[2], Tool::Opaque { .. }));
    let mut l2 = Losses::new();
    let enc = encode_request(&req, &mut l2);
    assert!(l2.is_empty(), "{l2:?}");
    assert_eq!(enc["max_tokens"], 100);
    assert!(enc.get("max_completion_tokens").is_none());
    assert_eq!(enc["safety_identifier"], "u1");
    assert_eq!(enc["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        enc["tool_choice"],
        json!({"type": "custom", "custom": {"name": "g"}})
    );
    assert_eq!(enc["messages"][1]["name"], "bob");
    assert_eq!(enc["messages"][2]["reasoning_content"], "why");
    assert_eq!(enc["messages"][3]["role"], "tool");
    assert_eq!(enc["messages"][4]["tool_call_id"], "c2");
    let mut back = decode_request(enc.to_string().as_bytes(), &mut Losses::new()).unwrap();
    back.extensions.retain(|e| e.key != "stream_options");
    assert_eq!(req, back);
}

#[test]
fn foreign_requests_encode_with_reported_losses() {
    let req = Request {
        model: "m".into(),
        system: vec![Part::Text {
            text: "sys".into(),
            cache_control: Some(CacheControl { ttl: None }),
            citations: None,
        }],
        messages: vec![
            Message::text(Role::User, "hi"),
            Message::new(
                Role::Assistant,
                vec![
                    Part::Reasoning {
                        text: "t".into(),
                        seal: Some(ReasoningSeal::anthropic_signature("s")),
                    },
                    Part::ToolCall {
                        id: "toolu_1".into(),
                        name: "f".into(),
                        arguments: String::new(),
                        kind: ToolKind::Function,
                    },
                ],
            ),
            Message::new(
                Role::Tool,
                vec![Part::ToolResult {
                    call_id: "toolu_1".into(),
                    content: vec![
                        Part::text("see image"),
                        Part::Image {
                            source: MediaSource::Url {
                                url: "https://x/y.png".into(),
                            },
                            detail: None,
                            cache_control: None,
                        },
                    ],
                    is_error: true,
                    kind: ToolKind::Function,
                    cache_control: None,
                }],
            ),
        ],
        top_k: Some(5),
        max_tokens: Some(10),
        reasoning: Some(ReasoningConfig {
            enabled: Some(true),
            budget_tokens: Some(10000),
            ..ReasoningConfig::default()
        }),
        stream: true,
        extensions: vec![Extension::new(
            Dialect::Anthropic,
            "thinking_extra",
            json!(1),
        )],
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    let paths: Vec<&str> = losses.iter().map(|l| l.path.as_str()).collect();
    for p in [
        "system[0].cache_control",
        "messages[1].content[0]",
        "messages[2].content[0].is_error",
        "messages[2].content[0].content[1]",
        "top_k",
        "reasoning.budget_tokens",
        "thinking_extra",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    assert_eq!(
        v["messages"][0],
        json!({"role": "system", "content": "sys"})
    );
    assert_eq!(
        v["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{}"
    );
    assert!(v["messages"][2]["content"].is_null());
    assert_eq!(
        v["messages"][3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "see image"})
    );
    assert_eq!(v["messages"][4]["role"], "user");
    assert_eq!(
        v["messages"][4]["content"][0]["image_url"]["url"],
        "https://x/y.png"
    );
    assert_eq!(v["max_completion_tokens"], 10);
    assert_eq!(v["reasoning_effort"], "medium");
    assert_eq!(v["stream_options"], json!({"include_usage": true}));
}

// ---------------------------------------------------------------------------------------------
// Responses and errors
// ---------------------------------------------------------------------------------------------

#[test]
fn response_encoding_maps_stops_and_parts() {
    let resp = Response {
        id: "msg_1".into(),
        model: "m".into(),
        content: vec![
            Part::Reasoning {
                text: "r".into(),
                seal: Some(ReasoningSeal::anthropic_signature("s")),
            },
            Part::text("a"),
            Part::Refusal { text: "no".into() },
        ],
        stop: StopReason::Refusal { details: None },
        usage: Usage {
            input_uncached: Some(1),
            output: Some(2),
            ..Usage::default()
        },
        extensions: vec![],
    };
    let mut losses = Losses::new();
    let v = encode_response(&resp, &mut losses);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(v["choices"][0]["message"]["refusal"], "no");
    assert_eq!(v["choices"][0]["message"]["content"], "a");
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "r");
    assert_eq!(v["usage"]["total_tokens"], 3);
    assert!(losses.iter().any(|l| l.path == "content[0].seal"));
    let mut l = Losses::new();
    let pause = Response {
        stop: StopReason::ContextWindowExceeded,
        ..resp
    };
    assert_eq!(
        encode_response(&pause, &mut l)["choices"][0]["finish_reason"],
        "length"
    );
    assert!(l.iter().any(|x| x.path == "stop"));
}

#[test]
fn multi_choice_response_keeps_choice_zero() {
    let body = json!({"id": "x", "object": "chat.completion", "created": 5, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "length"},
        {"index": 1, "message": {"role": "assistant", "content": "b"}, "finish_reason": "stop"}]});
    let mut losses = Losses::new();
    let r = decode_response(body.to_string().as_bytes(), &mut losses).unwrap();
    assert_eq!(r.content, vec![Part::text("a")]);
    assert_eq!(r.stop, StopReason::MaxTokens);
    assert!(!losses.is_empty());
    assert_eq!(encode_response(&r, &mut Losses::new())["created"], 5);
}

#[test]
fn errors_map_codes_and_render_without_none() {
    let e = decode_error(
        Some(429),
        br#"{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    );
    assert_eq!(e.kind, ErrorKind::Billing);
    assert_eq!(encode_error(&e).0, 429);
    let e = decode_error(Some(401), br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#);
    assert_eq!(e.kind, ErrorKind::Authentication);
    let e = decode_error(Some(503), b"<html>busy</html>");
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.message, "<html>busy</html>");
    let o = ErrorBody::new(ErrorKind::Overloaded, "busy");
    let (status, body) = encode_error(&o);
    assert_eq!(status, 529);
    assert_eq!(body["error"]["param"], Value::Null);
    assert_eq!(body["error"]["code"], Value::Null);
    let ev = stream_error_event(&o);
    assert!(ev.event.is_none());
    assert!(ev.data.contains("\"busy\""));
}

#[test]
fn legacy_function_call_and_late_ids_stay_one_call() {
    let events = decode_events(&[
        delta_chunk(
            json!({"role": "assistant", "function_call": {"name": "f", "arguments": ""}}),
            None,
        ),
        delta_chunk(json!({"function_call": {"arguments": "{}"}}), None),
        delta_chunk(json!({}), Some("function_call")),
        done(),
    ]);
    assert_eq!(
        tool_calls(&events),
        vec![("call_0".into(), "f".into(), "{}".into())]
    );
    assert_eq!(collect(&events).unwrap().stop, StopReason::ToolUse);
    let events = decode_events(&[
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{"}}]}),
            None,
        ),
        delta_chunk(
            json!({"tool_calls": [{"index": 0, "id": "late", "function": {"arguments": "}"}}]}),
            None,
        ),
        delta_chunk(json!({}), Some("tool_calls")),
        done(),
    ]);
    assert_eq!(
        tool_calls(&events),
        vec![("call_0".into(), "f".into(), "{}".into())]
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn arb_part() -> impl Strategy<Value = Part> {
        prop_oneof![
            "[a-z ]{0,12}".prop_map(Part::text),
            "[a-z ]{0,12}".prop_map(|t| Part::Reasoning {
                text: t,
                seal: None
            }),
            "[a-z ]{0,12}".prop_map(|t| Part::Refusal { text: t }),
            ("[a-z]{1,6}", 0u32..1000).prop_map(|(n, a)| Part::ToolCall {
                id: format!("call_{n}"),
                name: n,
                arguments: format!("{{\"a\":{a}}}"),
                kind: ToolKind::Function,
            }),
        ]
    }

    /// What a Chat stream can tell apart: adjacent pieces of one kind are one block, empty
    /// pieces are nothing.
    fn chat_view(parts: Vec<Part>) -> Vec<Part> {
        let mut out: Vec<Part> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (_, Part::Text { text, .. }) if text.is_empty() => {}
                (_, Part::Reasoning { text, .. }) if text.is_empty() => {}
                (_, Part::Refusal { text }) if text.is_empty() => {}
                (Some(Part::Text { text: a, .. }), Part::Text { text: b, .. }) => a.push_str(&b),
                (Some(Part::Reasoning { text: a, .. }), Part::Reasoning { text: b, .. }) => {
                    a.push_str(&b)
                }
                (Some(Part::Refusal { text: a }), Part::Refusal { text: b }) => a.push_str(&b),
                (_, p) => out.push(p),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn canonical_streams_survive_chat(
            content in proptest::collection::vec(arb_part(), 0..8),
            input in proptest::option::of(0u64..100_000),
            cached in proptest::option::of(0u64..100_000),
            output in proptest::option::of(0u64..10_000),
            max in any::<bool>(),
        ) {
            let has_calls = content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let stop = if max { StopReason::MaxTokens } else { StopReason::EndTurn.reconcile(has_calls) };
            let usage = Usage { input_uncached: input, cache_read: cached, output, ..Usage::default() };
            let resp = Response { id: "chatcmpl-1".into(), model: "m".into(), content, stop, usage, extensions: vec![] };
            let (chat, losses) = encode_events(&response_events(&resp), true);
            prop_assert!(losses.is_empty());
            validate(&chat).unwrap();
            let back = collect(&decode_events(&chat)).unwrap();
            // Unknown counts are written as 0, so they come back as 0.
            let want_usage = Usage {
                input_uncached: Some(input.unwrap_or(0)),
                cache_read: Some(cached.unwrap_or(0)),
                output: Some(output.unwrap_or(0)),
                reasoning: Some(0),
                ..Usage::default()
            };
            prop_assert_eq!(back.usage, want_usage);
            prop_assert_eq!(back.stop, resp.stop);
            prop_assert_eq!(back.content, chat_view(resp.content));
        }
    }
}
