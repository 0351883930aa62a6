//! Tests on hand-written cases and on every recording under `test_data/responses/`.

use std::path::PathBuf;

use dragoman_model::{
    BlockKind, Delta, Dialect, ErrorKind, Family, Losses, Message, Part, ReasoningSeal, Request,
    Response, Role, StopReason, StreamEvent, StreamOptions, ToolKind, Usage, collect,
    response_events,
};
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::*;

fn data_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test_data/responses")
        .join(sub)
}

fn files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no test data in {sub}");
    v
}

fn decode_stream(events: &[Event]) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for e in events {
        d.push(e, &mut out).unwrap();
    }
    d.finish(&mut out);
    out
}

fn encode_stream(events: &[StreamEvent]) -> (Vec<Event>, Losses) {
    let mut enc = StreamEncoder::new(StreamOptions::default());
    let mut out = Vec::new();
    let mut losses = Losses::new();
    for e in events {
        enc.push(e, &mut out, &mut losses);
    }
    enc.finish(&mut out, &mut losses);
    (out, losses)
}

/// The differences a re-encoded stream may show: a non-`resp_` id gains the prefix, and blocks
/// that overlapped upstream (OpenRouter's reasoning item stays open while the message streams)
/// come back one after the other, because Responses items cannot interleave. So block events
/// are grouped per block, each block keeping its own order. Usage must come back exactly.
fn normalize(events: &[StreamEvent]) -> Vec<StreamEvent> {
    let block = |e: &StreamEvent| match e {
        StreamEvent::BlockStart { index, .. }
        | StreamEvent::BlockDelta { index, .. }
        | StreamEvent::BlockStop { index } => Some(*index),
        _ => None,
    };
    let mut sorted: Vec<&StreamEvent> = events.iter().collect();
    sorted.sort_by_key(|e| match block(e) {
        None if matches!(e, StreamEvent::MessageStart { .. }) => (0, 0),
        None => (2, 0),
        Some(i) => (1, i),
    });
    sorted
        .into_iter()
        .map(|e| match e {
            StreamEvent::MessageStart { id, model, usage } => StreamEvent::MessageStart {
                id: response_id(id),
                model: model.clone(),
                usage: *usage,
            },
            other => other.clone(),
        })
        .collect()
}

// (a) requests -------------------------------------------------------------------------------

#[test]
fn every_request_round_trips() {
    for path in files("requests", "json") {
        let body = std::fs::read(&path).unwrap();
        let mut l1 = Losses::new();
        let req = decode_request(&body, &mut l1).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        for l in l1.iter() {
            // Message `phase` has no place in the canonical model; it is the one known loss.
            assert!(l.path.ends_with(".phase"), "{path:?}: decode loss {l}");
        }
        let mut l2 = Losses::new();
        let wire = encode_request(&req, &mut l2);
        assert!(l2.is_empty(), "{path:?}: encode losses {:?}", l2);
        let mut l3 = Losses::new();
        let mut again = decode_request(wire.to_string().as_bytes(), &mut l3).unwrap();
        assert!(l3.is_empty(), "{path:?}: {:?}", l3);
        if !req
            .extensions
            .iter()
            .any(|e| e.dialect == Dialect::Responses)
        {
            // The stateless defaults added for requests from other dialects.
            again
                .extensions
                .retain(|e| e.key != "store" && e.key != "include");
        }
        let mut req = req;
        // JSON key order is not meaningful; extensions come back in the encoder's order.
        req.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        again.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(req.messages, again.messages, "{path:?}");
        assert_eq!(req, again, "{path:?}");
    }
}

#[test]
fn codex_tool_followup_decodes_as_expected() {
    let body =
        std::fs::read(data_dir("requests").join("client__codex-tool-followup.json")).unwrap();
    let req = decode_request(&body, &mut Losses::new()).unwrap();
    let last = req
        .messages
        .iter()
        .rfind(|m| m.role == Role::Assistant)
        .unwrap();
    assert!(
        matches!(&last.content[0], Part::Reasoning { seal: Some(s), .. }
        if s.family == Family::OpenAi && s.item_id.as_deref() == Some("rs_f121c0c1ff664aca8dd54f5c"))
    );
    assert!(
        matches!(&last.content[1], Part::ToolCall { id, .. } if id == "call_74b42f38807f405f8ce57146")
    );
    assert_eq!(req.messages[0].role, Role::Developer);
}

// (b) responses ------------------------------------------------------------------------------

#[test]
fn every_response_round_trips() {
    for path in files("responses", "json") {
        let body = std::fs::read(&path).unwrap();
        let mut l1 = Losses::new();
        let resp = decode_response(&body, &mut l1).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let mut l2 = Losses::new();
        let wire = encode_response(&resp, &mut l2);
        assert!(l2.is_empty(), "{path:?}: {:?}", l2);
        let again = decode_response(wire.to_string().as_bytes(), &mut Losses::new()).unwrap();
        let mut expected = resp.clone();
        expected.id = response_id(&resp.id);
        let mut again = again;
        expected.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        again.extensions.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(expected, again, "{path:?}");
    }
}

// (c) streams --------------------------------------------------------------------------------

#[test]
fn every_stream_decodes_reencodes_and_validates() {
    for path in files("streams", "sse") {
        let bytes = std::fs::read(&path).unwrap();
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        let canon = decode_stream(&events);
        match canon.last() {
            Some(StreamEvent::Error { .. }) => {}
            _ => {
                collect(&canon).unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
            }
        }
        let (wire, losses) = encode_stream(&canon);
        assert!(losses.is_empty(), "{path:?}: {:?}", losses);
        validate(&wire).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let again = decode_stream(&wire);
        assert_eq!(normalize(&canon), normalize(&again), "{path:?}");
    }
}

#[test]
fn random_byte_splits_give_identical_events() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for path in files("streams", "sse") {
        let bytes = std::fs::read(&path).unwrap();
        let whole = decode_stream(&dragoman_sse::decode_all(&bytes).unwrap());
        for _ in 0..3 {
            let mut dec = dragoman_sse::Decoder::new();
            let mut sse = Vec::new();
            let mut pos = 0;
            while pos < bytes.len() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let n = 1 + (seed >> 33) as usize % 97;
                let end = (pos + n).min(bytes.len());
                dec.push(&bytes[pos..end], &mut sse).unwrap();
                pos = end;
            }
            dec.finish(&mut sse).unwrap();
            assert_eq!(whole, decode_stream(&sse), "{path:?}");
        }
    }
}

#[test]
fn error_recording_ends_with_error() {
    let bytes = std::fs::read(data_dir("streams").join("vercel-ai__openai-error.1.sse")).unwrap();
    let canon = decode_stream(&dragoman_sse::decode_all(&bytes).unwrap());
    let errors: Vec<_> = canon
        .iter()
        .filter(|e| matches!(e, StreamEvent::Error { .. }))
        .collect();
    assert_eq!(errors.len(), 1);
    match canon.last().unwrap() {
        StreamEvent::Error { error } => {
            assert_eq!(error.kind, ErrorKind::Billing);
            assert_eq!(error.code.as_deref(), Some("insufficient_quota"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn id_rotation_is_keyed_by_output_index() {
    let bytes =
        std::fs::read(data_dir("streams").join("vercel-ai__github-copilot-id-rotation.1.sse"))
            .unwrap();
    let canon = decode_stream(&dragoman_sse::decode_all(&bytes).unwrap());
    let resp = collect(&canon).unwrap();
    assert!(
        resp.content
            .iter()
            .any(|p| matches!(p, Part::Reasoning { text, .. } if !text.is_empty()))
    );
    assert!(
        resp.content
            .iter()
            .any(|p| matches!(p, Part::Text { text, .. } if !text.is_empty()))
    );
}

// (d) errors ---------------------------------------------------------------------------------

#[test]
fn error_files_map_to_kinds() {
    let expected = [
        (
            "pydantic-ai__test_model_name_suggestion_openai-responses.json",
            ErrorKind::NotFound,
        ),
        (
            "pydantic-ai__test_openai_responses_model_http_error.json",
            ErrorKind::InvalidRequest,
        ),
        (
            "pydantic-ai__test_openai_responses_thinking_with_modified_history.2.json",
            ErrorKind::InvalidRequest,
        ),
        ("vercel-ai__openai-error.1.json", ErrorKind::Billing),
        (
            "vercel-ai__reasoning-model-temperature-error.json",
            ErrorKind::InvalidRequest,
        ),
    ];
    for path in files("errors", "json") {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let status = v["status"].as_u64().map(|s| s as u16);
        let err = decode_error(status, v["body"].to_string().as_bytes());
        let name = path.file_name().unwrap().to_str().unwrap();
        let kind = expected
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .unwrap();
        assert_eq!(err.kind, kind, "{name}");
        let (_, body) = encode_error(&err);
        let back = decode_error(status, body.to_string().as_bytes());
        assert_eq!(back.kind, err.kind, "{name}");
        assert_eq!(back.message, err.message);
        assert_ne!(body["error"]["code"], json!("None"));
    }
}

#[test]
fn errors_are_lenient_and_never_say_none() {
    let e = decode_error(Some(502), b"<html>bad gateway</html>");
    assert_eq!(e.kind, ErrorKind::Server);
    assert!(e.message.contains("bad gateway"));
    let e = decode_error(Some(429), b"");
    assert_eq!(e.kind, ErrorKind::RateLimited);
    let (status, body) = encode_error(&dragoman_model::ErrorBody::new(
        ErrorKind::Overloaded,
        "busy",
    ));
    assert_eq!(status, 503);
    assert!(body["error"]["param"].is_null());
    assert_eq!(body["error"]["type"], "server_error");
    let (status, _) = encode_error(&dragoman_model::ErrorBody::new(
        ErrorKind::InvalidRequest,
        "x",
    ));
    assert_eq!(status, 400);
}

// (e) named cases ----------------------------------------------------------------------------

fn sse(events: &[Value]) -> Vec<Event> {
    events
        .iter()
        .map(|v| Event::named(v["type"].as_str().unwrap(), v.to_string()))
        .collect()
}

#[test]
fn stream_usage_subtracts_cached_tokens() {
    let events = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m", "output": []}}),
        json!({"type": "response.completed", "sequence_number": 1, "response": {"id": "resp_1", "status": "completed",
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "hi", "annotations": []}]}],
            "usage": {"input_tokens": 1234, "input_tokens_details": {"cached_tokens": 1024},
                      "output_tokens": 100, "output_tokens_details": {"reasoning_tokens": 60}, "total_tokens": 1334}}}),
    ]);
    let canon = decode_stream(&events);
    let usage = canon
        .iter()
        .find_map(|e| match e {
            StreamEvent::MessageDelta { usage, .. } => Some(*usage),
            _ => None,
        })
        .unwrap();
    assert_eq!(usage.input_uncached, Some(210));
    assert_eq!(usage.cache_read, Some(1024));
    assert_eq!(usage.output, Some(100));
    assert_eq!(usage.reasoning, Some(60));
    assert_eq!(usage.cache_write, None);
}

fn text_response(content: Vec<Part>, stop: StopReason, usage: Usage) -> Response {
    Response {
        id: "msg_abc".into(),
        model: "m".into(),
        content,
        stop,
        usage,
        extensions: vec![],
    }
}

#[test]
fn usage_encodes_inclusive_totals() {
    let usage = Usage {
        input_uncached: Some(3),
        cache_read: Some(4004),
        cache_write: Some(10),
        output: Some(9),
        ..Usage::default()
    };
    let v = encode_response(
        &text_response(vec![Part::text("hi")], StopReason::EndTurn, usage),
        &mut Losses::new(),
    );
    assert_eq!(v["usage"]["input_tokens"], 4017);
    assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 4004);
    assert_eq!(v["usage"]["input_tokens_details"]["cache_write_tokens"], 10);
    assert_eq!(v["usage"]["output_tokens"], 9);
    assert_eq!(v["usage"]["total_tokens"], 4026);
    assert_eq!(v["id"], "resp_msg_abc");
    let back = decode_response(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(back.usage.input_uncached, Some(3));
    assert_eq!(back.usage.cache_write, Some(10));
}

/// The reasoning items a client would replay from an encoded output.
fn replay(items: &[Value]) -> Request {
    let body = json!({"model": "m", "input": items});
    decode_request(body.to_string().as_bytes(), &mut Losses::new()).unwrap()
}

#[test]
fn anthropic_seal_survives_a_responses_client_round_trip() {
    let seal = ReasoningSeal::anthropic_signature("sigAbC/+==");
    let part = Part::Reasoning {
        text: "thought".into(),
        seal: Some(seal.clone()),
    };
    let resp = text_response(
        vec![part, Part::text("answer")],
        StopReason::EndTurn,
        Usage::default(),
    );

    // Non-streamed.
    let v = encode_response(&resp, &mut Losses::new());
    let items = v["output"].as_array().unwrap();
    assert_ne!(items[0]["encrypted_content"], json!("sigAbC/+=="));
    let req = replay(items);
    match &req.messages[0].content[0] {
        Part::Reasoning {
            text,
            seal: Some(s),
        } => {
            assert_eq!(text, "thought");
            assert_eq!(s, &seal);
        }
        other => panic!("{other:?}"),
    }

    // Streamed.
    let (wire, _) = encode_stream(&response_events(&resp));
    validate(&wire).unwrap();
    let last: Value = serde_json::from_str(&wire.last().unwrap().data).unwrap();
    let req = replay(last["response"]["output"].as_array().unwrap());
    assert!(
        matches!(&req.messages[0].content[0], Part::Reasoning { seal: Some(s), .. } if *s == seal)
    );

    // Redacted thinking travels the same way.
    let red = ReasoningSeal::anthropic_redacted("opaque-bytes");
    let resp = text_response(
        vec![Part::Reasoning {
            text: String::new(),
            seal: Some(red.clone()),
        }],
        StopReason::EndTurn,
        Usage::default(),
    );
    let (wire, _) = encode_stream(&response_events(&resp));
    validate(&wire).unwrap();
    let last: Value = serde_json::from_str(&wire.last().unwrap().data).unwrap();
    let req = replay(last["response"]["output"].as_array().unwrap());
    assert!(
        matches!(&req.messages[0].content[0], Part::Reasoning { seal: Some(s), .. } if *s == red)
    );
}

#[test]
fn request_encoder_sends_only_openai_seals() {
    let openai = ReasoningSeal::openai_encrypted(Some("rs_123".into()), "gAAAA-enc==");
    let req = Request {
        model: "gpt-5".into(),
        messages: vec![
            Message::text(Role::User, "hi"),
            Message::new(
                Role::Assistant,
                vec![
                    Part::Reasoning {
                        text: "a".into(),
                        seal: Some(ReasoningSeal::anthropic_signature("sig")),
                    },
                    Part::Reasoning {
                        text: "b".into(),
                        seal: Some(openai.clone()),
                    },
                    Part::ToolCall {
                        id: "toolu_01".into(),
                        name: "f".into(),
                        arguments: "{}".into(),
                        kind: ToolKind::Function,
                    },
                ],
            ),
            Message::new(
                Role::Tool,
                vec![Part::ToolResult {
                    call_id: "toolu_01".into(),
                    content: vec![Part::text("ok")],
                    is_error: true,
                    kind: ToolKind::Function,
                    cache_control: None,
                }],
            ),
        ],
        stop: vec!["END".into()],
        seed: Some(1),
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    let input = v["input"].as_array().unwrap();
    let reasoning: Vec<&Value> = input.iter().filter(|i| i["type"] == "reasoning").collect();
    assert_eq!(reasoning.len(), 1);
    assert_eq!(reasoning[0]["id"], "rs_123");
    assert_eq!(reasoning[0]["encrypted_content"], "gAAAA-enc==");
    assert!(losses.iter().any(|l| l.path == "messages[1].content[0]"));
    assert!(losses.iter().any(|l| l.path == "stop"));
    assert!(losses.iter().any(|l| l.path == "seed"));
    assert!(losses.iter().any(|l| l.path.ends_with("is_error")));
    assert_eq!(v["store"], false);
    assert_eq!(v["include"], json!(["reasoning.encrypted_content"]));
    let out = input
        .iter()
        .find(|i| i["type"] == "function_call_output")
        .unwrap();
    assert_eq!(out["call_id"], "toolu_01");
    assert_eq!(out["output"], "ok");
    let back = decode_request(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert!(
        matches!(&back.messages[1].content[0], Part::Reasoning { seal: Some(s), .. } if *s == openai)
    );
}

#[test]
fn cut_stream_becomes_error_and_failed() {
    let resp = text_response(
        vec![Part::text("partial")],
        StopReason::EndTurn,
        Usage::default(),
    );
    let mut events = response_events(&resp);
    events.truncate(events.len() - 2);
    let (wire, _) = encode_stream(&events);
    validate(&wire).unwrap();
    let types: Vec<&str> = wire.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert!(!types.contains(&"response.completed"));
    assert_eq!(&types[types.len() - 2..], &["error", "response.failed"]);
    let err: Value = serde_json::from_str(&wire[wire.len() - 2].data).unwrap();
    assert!(err["error"]["message"].is_string());
    assert!(err["message"].is_string());
}

#[test]
fn interleaved_tool_calls_become_sequential_items() {
    let call = |i: usize, id: &str| StreamEvent::BlockStart {
        index: i,
        block: BlockKind::ToolCall {
            id: id.into(),
            name: format!("f{i}"),
            kind: ToolKind::Function,
        },
    };
    let args = |i: usize, a: &str| StreamEvent::BlockDelta {
        index: i,
        delta: Delta::Arguments(a.into()),
    };
    let events = vec![
        StreamEvent::MessageStart {
            id: "x".into(),
            model: "m".into(),
            usage: Usage::default(),
        },
        call(0, "call_a"),
        call(1, "call_b"),
        args(1, "{\"b\":"),
        args(0, "{\"a\":"),
        args(1, "2}"),
        StreamEvent::BlockStop { index: 1 },
        args(0, "1}"),
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop: StopReason::ToolUse,
            usage: Usage::default(),
        },
        StreamEvent::MessageStop,
    ];
    let (wire, losses) = encode_stream(&events);
    assert!(losses.is_empty());
    validate(&wire).unwrap();
    let resp = collect(&decode_stream(&wire)).unwrap();
    assert_eq!(resp.stop, StopReason::ToolUse);
    match &resp.content[..] {
        [
            Part::ToolCall {
                id: a,
                arguments: aa,
                ..
            },
            Part::ToolCall {
                id: b,
                arguments: ba,
                ..
            },
        ] => {
            assert_eq!((a.as_str(), aa.as_str()), ("call_a", "{\"a\":1}"));
            assert_eq!((b.as_str(), ba.as_str()), ("call_b", "{\"b\":2}"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn max_tokens_becomes_incomplete() {
    let resp = text_response(
        vec![Part::text("cut")],
        StopReason::MaxTokens,
        Usage::default(),
    );
    let (wire, _) = encode_stream(&response_events(&resp));
    validate(&wire).unwrap();
    let last: Value = serde_json::from_str(&wire.last().unwrap().data).unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    let back = collect(&decode_stream(&wire)).unwrap();
    assert_eq!(back.stop, StopReason::MaxTokens);
    let v = encode_response(&resp, &mut Losses::new());
    assert_eq!(v["status"], "incomplete");
}

#[test]
fn arguments_only_in_done_are_recovered() {
    let events = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
               "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}}),
        json!({"type": "response.output_item.done", "sequence_number": 2, "output_index": 0,
               "item": {"type": "function_call", "id": "fc_other", "call_id": "call_1", "name": "f", "arguments": "{\"x\":1}"}}),
        json!({"type": "response.completed", "sequence_number": 3, "response": {"status": "completed", "output": []}}),
    ]);
    let resp = collect(&decode_stream(&events)).unwrap();
    assert_eq!(resp.stop, StopReason::ToolUse);
    assert!(
        matches!(&resp.content[0], Part::ToolCall { arguments, .. } if arguments == "{\"x\":1}")
    );
}

#[test]
fn malformed_requests_name_the_field() {
    let err = |body: &str| decode_request(body.as_bytes(), &mut Losses::new()).unwrap_err();
    assert_eq!(err(r#"{"model":"m","input":5}"#).path, "input");
    assert_eq!(
        err(r#"{"model":"m","input":[{"type":"function_call_output","output":"x"}]}"#).path,
        "input[0].call_id"
    );
    assert_eq!(err("{not json").path, "body");
    assert_eq!(
        err(r#"{"model":"m","temperature":"hot"}"#).path,
        "temperature"
    );
    assert_eq!(
        err(r#"{"model":"m","input":[{"role":"wizard","content":"x"}]}"#).path,
        "input[0].role"
    );
}

#[test]
fn malformed_stream_json_names_the_event() {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    d.push(
        &Event::named(
            "response.created",
            r#"{"type":"response.created","response":{}}"#,
        ),
        &mut out,
    )
    .unwrap();
    let e = d
        .push(
            &Event::named("response.output_text.delta", "{oops"),
            &mut out,
        )
        .unwrap_err();
    assert!(
        e.path.contains("event 1") && e.path.contains("response.output_text.delta"),
        "{e}"
    );
}

#[test]
fn truncated_upstream_stream_ends_with_error() {
    let events = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
               "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
    ]);
    let canon = decode_stream(&events);
    assert!(matches!(canon.last(), Some(StreamEvent::Error { .. })));
}

#[test]
fn simple_request_fields_map() {
    let body = json!({
        "model": "gpt-5", "instructions": "be brief", "input": "hello",
        "max_output_tokens": 100, "reasoning": {"effort": "none"},
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}, "strict": true}, "verbosity": "low"},
        "tool_choice": {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]},
        "safety_identifier": "u1", "store": false,
    });
    let req = decode_request(body.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(req.system, vec![Part::text("be brief")]);
    assert_eq!(req.messages, vec![Message::text(Role::User, "hello")]);
    assert_eq!(req.max_tokens, Some(100));
    assert_eq!(req.reasoning.as_ref().unwrap().enabled, Some(false));
    assert_eq!(req.user.as_deref(), Some("u1"));
    assert_eq!(req.tool_choice, Some(dragoman_model::ToolChoice::Required));
    let v = encode_request(&req, &mut Losses::new());
    assert_eq!(v["text"]["verbosity"], "low");
    assert_eq!(v["text"]["format"]["name"], "x");
    assert_eq!(v["reasoning"]["effort"], "none");
    assert_eq!(v["tool_choice"]["type"], "allowed_tools");
    assert_eq!(v["store"], false);
    assert!(v.get("include").is_none());
}

#[test]
fn refusal_citations_and_opaque_blocks_stream_back() {
    let ann = json!({"type": "url_citation", "url": "https://x", "title": "x", "start_index": 0, "end_index": 1});
    let web = json!({"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}});
    let resp = text_response(
        vec![
            Part::Opaque {
                dialect: Dialect::Responses,
                value: web.clone(),
            },
            Part::Text {
                text: "a".into(),
                cache_control: None,
                citations: Some((Dialect::Responses, json!([ann]))),
            },
            Part::Refusal { text: "no".into() },
            Part::Opaque {
                dialect: Dialect::Anthropic,
                value: json!({"type": "server_tool_use"}),
            },
        ],
        StopReason::Refusal { details: None },
        Usage::default(),
    );
    let (wire, losses) = encode_stream(&response_events(&resp));
    validate(&wire).unwrap();
    assert_eq!(losses.len(), 1, "{losses:?}");
    let back = collect(&decode_stream(&wire)).unwrap();
    let mut expected = resp.content.clone();
    expected.pop();
    assert_eq!(back.content, expected);
    assert_eq!(back.stop, StopReason::Refusal { details: None });
}

#[test]
fn custom_tool_calls_stream_as_custom_items() {
    let resp = text_response(
        vec![Part::ToolCall {
            id: "call_c".into(),
            name: "sql".into(),
            arguments: "SELECT 1".into(),
            kind: ToolKind::Custom,
        }],
        StopReason::ToolUse,
        Usage::default(),
    );
    let (wire, _) = encode_stream(&response_events(&resp));
    validate(&wire).unwrap();
    assert!(
        wire.iter()
            .any(|e| e.event.as_deref() == Some("response.custom_tool_call_input.delta"))
    );
    assert_eq!(
        collect(&decode_stream(&wire)).unwrap().content,
        resp.content
    );
    let v = encode_response(&resp, &mut Losses::new());
    assert_eq!(v["output"][0]["type"], "custom_tool_call");
    assert_eq!(v["output"][0]["input"], "SELECT 1");
}

#[test]
fn flat_error_event_and_failed_response_are_read() {
    let flat = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}),
        json!({"type": "error", "sequence_number": 1, "code": "rate_limit_exceeded", "message": "slow down", "param": null}),
        json!({"type": "response.failed", "sequence_number": 2, "response": {"status": "failed", "error": {"code": "server_error", "message": "x"}}}),
    ]);
    let canon = decode_stream(&flat);
    assert_eq!(canon.len(), 2);
    match &canon[1] {
        StreamEvent::Error { error } => {
            assert_eq!(error.kind, ErrorKind::RateLimited);
            assert_eq!(error.message, "slow down");
        }
        other => panic!("{other:?}"),
    }
    let failed = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}),
        json!({"type": "response.failed", "sequence_number": 1, "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}}),
    ]);
    assert!(
        matches!(&decode_stream(&failed)[1], StreamEvent::Error { error } if error.kind == ErrorKind::Server && error.message == "boom")
    );
}

#[test]
fn validator_rejects_broken_streams() {
    let ok = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {}}),
        json!({"type": "response.completed", "sequence_number": 1, "response": {"output": []}}),
    ]);
    validate(&ok).unwrap();
    let gap = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {}}),
        json!({"type": "response.completed", "sequence_number": 2, "response": {"output": []}}),
    ]);
    assert_eq!(validate(&gap).unwrap_err().index, 1);
    let open = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {}}),
        json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": {"type": "message", "id": "m"}}),
        json!({"type": "response.output_text.delta", "sequence_number": 2, "item_id": "other", "output_index": 0, "delta": "x"}),
    ]);
    assert_eq!(validate(&open).unwrap_err().index, 2);
    let mut done = ok.clone();
    done.push(Event::named("x", "[DONE]"));
    assert!(validate(&done).is_err());
    let no_terminal = &ok[..1];
    assert!(validate(no_terminal).is_err());
    let mut wrong_name = ok.clone();
    wrong_name[1].event = Some("response.done".into());
    assert!(validate(&wrong_name).is_err());
}

#[test]
fn foreign_request_features_are_reported() {
    let req = Request {
        model: "gpt-5".into(),
        system: vec![Part::text("a"), Part::text("b")],
        messages: vec![Message::text(Role::User, "hi")],
        tools: vec![
            dragoman_model::Tool::Function {
                name: "f".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: None,
                cache_control: None,
            },
            dragoman_model::Tool::Opaque {
                dialect: Dialect::Anthropic,
                value: json!({"type": "web_search_20250305"}),
            },
        ],
        top_k: Some(5),
        reasoning: Some(dragoman_model::ReasoningConfig {
            budget_tokens: Some(10000),
            ..Default::default()
        }),
        extensions: vec![dragoman_model::Extension::new(
            Dialect::Anthropic,
            "container",
            json!("c"),
        )],
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    assert_eq!(v["instructions"], "a\n\nb");
    assert_eq!(v["tools"].as_array().unwrap().len(), 1);
    assert_eq!(v["tools"][0]["strict"], false);
    assert_eq!(v["reasoning"]["effort"], "medium");
    for path in [
        "system",
        "tools[1]",
        "top_k",
        "reasoning.budget_tokens",
        "extensions.container",
    ] {
        assert!(losses.iter().any(|l| l.path == path), "{path}: {losses:?}");
    }
}

#[test]
fn output_only_in_the_final_response_is_recovered() {
    let events = sse(&[
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m"}}),
        json!({"type": "response.completed", "sequence_number": 1, "response": {"status": "completed", "output": [
            {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "hi", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{}"}
        ]}}),
    ]);
    let resp = collect(&decode_stream(&events)).unwrap();
    assert_eq!(resp.content.len(), 2);
    assert_eq!(resp.content[0], Part::text("hi"));
    assert_eq!(resp.stop, StopReason::ToolUse);
}

// Property: any canonical response streams through the encoder into a valid Responses stream
// that decodes back to the same response.

mod props {
    use proptest::prelude::*;

    use super::*;

    fn part() -> impl Strategy<Value = Part> {
        let text = "[a-z \\n]{0,12}";
        prop_oneof![
            (text, prop::option::of("[a-z]{1,5}")).prop_map(|(t, c)| Part::Text {
                text: t,
                cache_control: None,
                citations: c.map(|u| (
                    Dialect::Responses,
                    json!([{"type": "url_citation", "url": u}])
                )),
            }),
            text.prop_map(|t| Part::Refusal { text: t }),
            (
                "call_[a-z0-9]{1,6}",
                "[a-z_]{1,6}",
                "[ -~]{0,16}",
                any::<bool>()
            )
                .prop_map(|(id, name, arguments, custom)| Part::ToolCall {
                    id,
                    name,
                    arguments,
                    kind: if custom {
                        ToolKind::Custom
                    } else {
                        ToolKind::Function
                    },
                }),
            (text, 0..4u8, "[A-Za-z0-9+/=]{1,12}").prop_map(|(t, s, p)| Part::Reasoning {
                // Redacted reasoning has no visible text.
                text: if s == 3 { String::new() } else { t },
                seal: match s {
                    0 => None,
                    1 => Some(ReasoningSeal::openai_encrypted(Some(format!("rs_{p}")), p)),
                    2 => Some(ReasoningSeal::anthropic_signature(p)),
                    _ => Some(ReasoningSeal::anthropic_redacted(p)),
                },
            }),
            "[a-z]{1,6}".prop_map(|id| Part::Opaque {
                dialect: Dialect::Responses,
                value: json!({"type": "web_search_call", "id": id, "status": "completed"}),
            }),
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        let user_part = prop_oneof![
            "[a-z ]{0,10}".prop_map(Part::text),
            (prop::option::of("low|high|auto"), 0..3u8).prop_map(|(detail, s)| Part::Image {
                source: match s {
                    0 => dragoman_model::MediaSource::Base64 {
                        media_type: "image/png".into(),
                        data: "iVBOR".into()
                    },
                    1 => dragoman_model::MediaSource::Url {
                        url: "https://x/y.png".into()
                    },
                    _ => dragoman_model::MediaSource::FileId {
                        file_id: "file_1".into()
                    },
                },
                detail,
                cache_control: None,
            }),
            (0..3u8).prop_map(|s| Part::Document {
                source: match s {
                    0 => dragoman_model::MediaSource::Base64 {
                        media_type: "application/pdf".into(),
                        data: "JVBER".into()
                    },
                    1 => dragoman_model::MediaSource::Url {
                        url: "https://x/y.pdf".into()
                    },
                    _ => dragoman_model::MediaSource::FileId {
                        file_id: "file_2".into()
                    },
                },
                title: None,
                filename: Some("y.pdf".into()),
                cache_control: None,
            }),
        ];
        let assistant_part = prop_oneof![part().prop_filter("assistant history", |p| match p {
            Part::ToolCall { arguments, .. } => !arguments.is_empty(),
            Part::Reasoning { seal, .. } => matches!(seal, Some(s) if s.family == Family::OpenAi),
            _ => true,
        }),];
        let result = (
            "call_[a-z]{1,4}",
            "[a-z]{1,8}",
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(call_id, t, image, custom)| {
                let mut content = vec![Part::text(t)];
                if image {
                    content.push(Part::Image {
                        source: dragoman_model::MediaSource::Url {
                            url: "https://x/z.png".into(),
                        },
                        detail: None,
                        cache_control: None,
                    });
                }
                Part::ToolResult {
                    call_id,
                    content,
                    is_error: false,
                    kind: if custom {
                        ToolKind::Custom
                    } else {
                        ToolKind::Function
                    },
                    cache_control: None,
                }
            });
        prop_oneof![
            prop::collection::vec(user_part, 0..3).prop_map(|c| Message::new(Role::User, c)),
            "[a-z ]{1,10}".prop_map(|t| Message::text(Role::Developer, t)),
            "[a-z ]{1,10}".prop_map(|t| Message::text(Role::System, t)),
            prop::collection::vec(assistant_part, 1..4)
                .prop_map(|c| Message::new(Role::Assistant, c)),
            prop::collection::vec(result, 1..3).prop_map(|c| Message::new(Role::Tool, c)),
        ]
    }

    fn stop() -> impl Strategy<Value = StopReason> {
        prop_oneof![
            Just(StopReason::EndTurn),
            Just(StopReason::ToolUse),
            Just(StopReason::MaxTokens),
            Just(StopReason::ContentFilter),
        ]
    }

    proptest! {
        #[test]
        // At least one part: a stream that completes with nothing is an upstream fault (see
        // `a_stream_completed_with_no_output_is_an_error_not_an_empty_success`).
        fn responses_stream_round_trip(
            content in prop::collection::vec(part(), 1..6),
            stop in stop(),
            nums in prop::array::uniform5(0..5000u64),
            write in prop::option::of(0..100u64),
        ) {
            let usage = Usage {
                input_uncached: Some(nums[0]),
                cache_read: Some(nums[1]),
                cache_write: write,
                output: Some(nums[2] + nums[3]),
                reasoning: Some(nums[3]),
                ..Usage::default()
            };
            let resp = Response { id: "x1".into(), model: "m".into(), content, stop, usage, extensions: vec![] };
            let (wire, losses) = encode_stream(&response_events(&resp));
            prop_assert!(losses.is_empty(), "{:?}", losses);
            validate(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = collect(&decode_stream(&wire)).map_err(|e| TestCaseError::fail(e.message))?;

            let calls = resp.content.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let refusal = resp.content.iter().any(|p| matches!(p, Part::Refusal { .. }));
            let mut expected = resp.clone();
            expected.id = "resp_x1".into();
            expected.stop = match resp.stop {
                StopReason::MaxTokens | StopReason::ContentFilter => resp.stop.clone(),
                _ if calls => StopReason::ToolUse,
                _ if refusal => StopReason::Refusal { details: None },
                _ => StopReason::EndTurn,
            };
            prop_assert_eq!(&back, &expected);

            // The non-streamed form agrees.
            let v = encode_response(&resp, &mut Losses::new());
            let whole = decode_response(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
            prop_assert_eq!(&whole.content, &expected.content);
            prop_assert_eq!(&whole.stop, &expected.stop);
            prop_assert_eq!(&whole.usage, &expected.usage);
        }

        /// Blocks interleaved at random (starts in index order, as the contract requires) come
        /// out as sequential items and decode to the same response.
        #[test]
        fn interleaved_blocks_are_serialized(
            content in prop::collection::vec(part(), 1..6),
            choices in prop::collection::vec(any::<u8>(), 64),
        ) {
            let resp = Response {
                id: "resp_i".into(), model: "m".into(), content, stop: StopReason::EndTurn,
                usage: Usage::default(), extensions: vec![],
            };
            let seq = response_events(&resp);
            let (head, rest) = seq.split_at(1);
            let (blocks_part, tail) = rest.split_at(rest.len() - 2);
            let mut queues: Vec<std::collections::VecDeque<StreamEvent>> = vec![Default::default(); resp.content.len()];
            for e in blocks_part {
                let i = match e {
                    StreamEvent::BlockStart { index, .. } | StreamEvent::BlockDelta { index, .. } | StreamEvent::BlockStop { index } => *index,
                    _ => unreachable!(),
                };
                queues[i].push_back(e.clone());
            }
            let mut mixed: Vec<StreamEvent> = head.to_vec();
            let mut next_start = 0;
            let mut k = 0;
            while queues.iter().any(|q| !q.is_empty()) {
                let ready: Vec<usize> = (0..queues.len())
                    .filter(|&b| match queues[b].front() {
                        Some(StreamEvent::BlockStart { .. }) => b == next_start,
                        Some(_) => true,
                        None => false,
                    })
                    .collect();
                let b = ready[choices[k % choices.len()] as usize % ready.len()];
                k += 1;
                let e = queues[b].pop_front().unwrap();
                if matches!(e, StreamEvent::BlockStart { .. }) {
                    next_start += 1;
                }
                mixed.push(e);
            }
            mixed.extend_from_slice(tail);
            let (wire, _) = encode_stream(&mixed);
            validate(&wire).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = collect(&decode_stream(&wire)).map_err(|e| TestCaseError::fail(e.message))?;
            let direct = collect(&decode_stream(&encode_stream(&seq).0)).unwrap();
            prop_assert_eq!(back, direct);
        }

        /// Any request Responses can express survives encode → decode unchanged (consecutive
        /// assistant or tool messages merge, as the decoder groups them).
        #[test]
        fn requests_round_trip(
            msgs in prop::collection::vec(message(), 0..8),
            system in prop::option::of("[a-z ]{0,10}"),
            effort in 0..6usize,
            temperature in prop::option::of(0..200u32),
            max_tokens in prop::option::of(1..10_000u64),
            choice in 0..5usize,
            stream in any::<bool>(),
        ) {
            let mut merged: Vec<Message> = Vec::new();
            for m in &msgs {
                match merged.last_mut() {
                    Some(last) if last.role == m.role && matches!(m.role, Role::Assistant | Role::Tool) => {
                        last.content.extend(m.content.clone())
                    }
                    _ => merged.push(m.clone()),
                }
            }
            let tools = vec![
                dragoman_model::Tool::Function {
                    name: "f".into(), description: Some("d".into()),
                    parameters: json!({"type": "object", "properties": {}}), strict: Some(true), cache_control: None,
                },
                dragoman_model::Tool::Custom { name: "c".into(), description: None, format: Some(json!({"type": "text"})) },
            ];
            let reasoning = match effort {
                0 => None,
                1 => Some(dragoman_model::ReasoningConfig { enabled: Some(false), effort: Some(dragoman_model::Effort::None), ..Default::default() }),
                n => Some(dragoman_model::ReasoningConfig {
                    enabled: Some(true),
                    effort: Some([dragoman_model::Effort::Minimal, dragoman_model::Effort::Low, dragoman_model::Effort::High, dragoman_model::Effort::Xhigh][n - 2]),
                    summary: Some("auto".into()),
                    ..Default::default()
                }),
            };
            let tool_choice = [
                None,
                Some(dragoman_model::ToolChoice::Auto),
                Some(dragoman_model::ToolChoice::Required),
                Some(dragoman_model::ToolChoice::Tool { name: "c".into() }),
                Some(dragoman_model::ToolChoice::Tool { name: "f".into() }),
            ][choice].clone();
            let req = Request {
                model: "gpt-5".into(),
                system: system.map(Part::text).into_iter().collect(),
                messages: merged,
                tools,
                tool_choice,
                parallel_tool_calls: Some(stream),
                max_tokens,
                temperature: temperature.map(|t| f64::from(t) / 100.0),
                response_format: Some(dragoman_model::ResponseFormat::JsonSchema {
                    name: Some("n".into()), schema: json!({"type": "object"}), strict: Some(true), description: None,
                }),
                reasoning,
                user: Some("u".into()),
                stream,
                extensions: vec![dragoman_model::Extension::new(Dialect::Responses, "prompt_cache_key", json!("k"))],
                ..Request::default()
            };
            let mut losses = Losses::new();
            let wire = encode_request(&req, &mut losses);
            prop_assert!(losses.is_empty(), "{:?}", losses);
            let back = decode_request(wire.to_string().as_bytes(), &mut Losses::new()).unwrap();
            prop_assert_eq!(back, req);
        }
    }
}

/// `*.done` events repeat the whole text or arguments; what the deltas missed is emitted from
/// them. The narrow (no-tree) reading and the general one must agree: the general path is
/// forced by a repeated key, which the narrow parse refuses.
/// The same events forced onto the decoder's general (tree) path: a repeated `type` key makes
/// the narrow parse refuse them.
fn general_path(events: &[Value]) -> Vec<Event> {
    events
        .iter()
        .map(|v| {
            let ty = v["type"].as_str().unwrap();
            let text = v
                .to_string()
                .replacen('{', &format!("{{\"type\":\"{ty}\","), 1);
            Event::named(ty, text)
        })
        .collect()
}

/// The text of the deltas `pick` selects, joined.
fn joined(events: &[StreamEvent], pick: impl Fn(&Delta) -> Option<&str>) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::BlockDelta { delta, .. } => pick(delta),
            _ => None,
        })
        .collect()
}

#[test]
fn done_events_fill_in_what_deltas_missed_on_both_paths() {
    let events = [
        json!({"type": "response.created", "response": {"id": "resp_1", "model": "m", "output": []}}),
        json!({"type": "response.in_progress", "response": {"id": "resp_other", "model": "other", "output": []}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": ""}}),
        json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hel"}),
        json!({"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "Hello \"world\""}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "Hello \"world\""}]}}),
        json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": ""}}),
        json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{\"a\""}),
        json!({"type": "response.function_call_arguments.done", "output_index": 1, "arguments": "{\"a\":1}"}),
        json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f", "arguments": "{\"a\":1}"}}),
        json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": [], "usage": {"input_tokens": 5, "output_tokens": 3}}}),
    ];
    let narrow = decode_stream(&sse(&events));
    assert_eq!(decode_stream(&general_path(&events)), narrow);
    let text = joined(&narrow, |d| match d {
        Delta::Text(t) => Some(t.as_str()),
        _ => None,
    });
    assert_eq!(text, "Hello \"world\"");
    let args = joined(&narrow, |d| match d {
        Delta::Arguments(t) => Some(t.as_str()),
        _ => None,
    });
    assert_eq!(args, "{\"a\":1}");
    assert!(matches!(
        &narrow[0],
        StreamEvent::MessageStart { id, model, .. } if id == "resp_1" && model == "m"
    ));
}

/// The end of a response read narrowly (its `output` left unparsed) and through the tree must
/// agree: the stop reason, the usage, and the items of a stream that streamed none.
#[test]
fn end_events_agree_on_both_paths() {
    let usage = json!({"input_tokens": 1234, "input_tokens_details": {"cached_tokens": 1024},
        "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 8}});
    let only_in_output = vec![
        json!({"type": "response.created", "response": {"id": "resp_1", "model": "m", "status": "in_progress", "output": [], "usage": null}}),
        json!({"type": "response.incomplete", "response": {"id": "resp_1", "model": "m", "status": "incomplete",
            "incomplete_details": {"reason": "content_filter"}, "usage": usage,
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "only here"}]}]}}),
    ];
    let streamed = vec![
        json!({"type": "response.created", "response": {"id": "resp_2", "model": "m", "output": []}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "streamed"}),
        json!({"type": "response.completed", "response": {"id": "resp_2", "model": "m", "status": "completed",
            "incomplete_details": null, "usage": usage,
            "output": [{"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": "streamed"}]}]}}),
    ];
    for (events, text, stop) in [
        (only_in_output, "only here", StopReason::ContentFilter),
        (streamed, "streamed", StopReason::EndTurn),
    ] {
        let narrow = decode_stream(&sse(&events));
        assert_eq!(decode_stream(&general_path(&events)), narrow);
        let got = joined(&narrow, |d| match d {
            Delta::Text(t) => Some(t.as_str()),
            _ => None,
        });
        assert_eq!(got, text);
        let end = narrow.iter().find_map(|e| match e {
            StreamEvent::MessageDelta { stop, usage } => Some((stop.clone(), *usage)),
            _ => None,
        });
        let (got_stop, u) = end.unwrap();
        assert_eq!(got_stop, stop);
        assert_eq!(
            (u.input_uncached, u.cache_read, u.output, u.reasoning),
            (Some(210), Some(1024), Some(40), Some(8))
        );
        assert!(matches!(narrow.last(), Some(StreamEvent::MessageStop)));
    }
}

/// Content part events read narrowly and through the tree agree: a refusal part, text only in
/// `content_part.done`, and citations arriving only there.
#[test]
fn part_events_agree_on_both_paths() {
    let cite = json!({"type": "url_citation", "url": "https://example.com", "title": "Ex",
        "start_index": 0, "end_index": 4});
    let events = vec![
        json!({"type": "response.created", "response": {"id": "resp_p", "model": "m", "output": []}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
        json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Se"}),
        json!({"type": "response.content_part.done", "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "See this", "annotations": [cite]}}),
        json!({"type": "response.content_part.added", "output_index": 0, "content_index": 1, "part": {"type": "refusal", "refusal": ""}}),
        json!({"type": "response.content_part.done", "output_index": 0, "content_index": 1, "part": {"type": "refusal", "refusal": "No."}}),
        json!({"type": "response.content_part.done", "output_index": 0, "content_index": 2, "part": {"type": "reasoning_text", "text": "ignored"}}),
        json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}),
        json!({"type": "response.completed", "response": {"id": "resp_p", "status": "completed", "output": []}}),
    ];
    let narrow = decode_stream(&sse(&events));
    assert_eq!(decode_stream(&general_path(&events)), narrow);
    let text = joined(&narrow, |d| match d {
        Delta::Text(t) => Some(t.as_str()),
        _ => None,
    });
    assert_eq!(text, "See this");
    assert!(narrow.iter().any(|e| matches!(e,
        StreamEvent::BlockDelta { delta: Delta::Citation { value, .. }, .. } if *value == cite)));
    assert!(narrow.iter().any(|e| matches!(e,
        StreamEvent::BlockDelta { delta: Delta::Refusal(t), .. } if t == "No.")));
}

#[test]
fn a_stream_completed_with_no_output_is_an_error_not_an_empty_success() {
    let ev = |v: serde_json::Value| Event::data(v.to_string());
    let head = json!({"id": "resp_1", "object": "response", "status": "in_progress", "model": "m", "output": []});
    let mut done = head.clone();
    done["status"] = json!("completed");
    let events = decode_stream(&[
        ev(json!({"type": "response.created", "sequence_number": 0, "response": head})),
        ev(json!({"type": "response.completed", "sequence_number": 1, "response": done})),
    ]);
    match events.last() {
        Some(StreamEvent::Error { error }) => {
            assert!(error.message.contains("no output"), "{error:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::MessageStop)));
    // Incomplete with nothing is the upstream's own answer (a limit reached), passed on as such.
    let mut cut = head.clone();
    cut["status"] = json!("incomplete");
    cut["incomplete_details"] = json!({"reason": "max_output_tokens"});
    let events = decode_stream(&[
        ev(json!({"type": "response.created", "sequence_number": 0, "response": head})),
        ev(json!({"type": "response.incomplete", "sequence_number": 1, "response": cut})),
    ]);
    assert!(matches!(events.last(), Some(StreamEvent::MessageStop)));
}
