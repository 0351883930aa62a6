//! Unit tests of the choices the recordings do not exercise: tool-choice rules, synthesized
//! tool specs, temperature cap, thinking fields, cache TTLs, losses, stop reasons, errors, the
//! stream codec's hand-written paths, and that no input panics.

#![allow(clippy::unwrap_used, clippy::panic)]

use dragoman_model::{
    BlockKind, CacheControl, Delta, Dialect, ErrorBody, ErrorKind, Extension, LossKind, Losses,
    MediaSource, Message, Part, ReasoningConfig, ReasoningSeal, Request, Role, StopReason,
    StreamEvent, StreamOptions, Tool, ToolChoice, ToolKind, Usage, collect, response_events,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::*;

fn call(id: &str, name: &str) -> Part {
    Part::ToolCall {
        id: id.into(),
        name: name.into(),
        arguments: r#"{"a":1}"#.into(),
        kind: ToolKind::Function,
    }
}

fn result(id: &str) -> Part {
    Part::ToolResult {
        call_id: id.into(),
        content: vec![Part::text("42")],
        is_error: true,
        kind: ToolKind::Function,
        cache_control: None,
    }
}

fn tool(name: &str) -> Tool {
    Tool::Function {
        name: name.into(),
        description: None,
        parameters: json!({"type": "object", "properties": {}}),
        strict: None,
        cache_control: None,
    }
}

fn with_tools_history() -> Request {
    Request {
        messages: vec![
            Message::text(Role::User, "hi"),
            Message::new(Role::Assistant, vec![call("t1", "lookup")]),
            Message::new(Role::Tool, vec![result("t1")]),
            Message::text(Role::User, "and?"),
        ],
        ..Request::default()
    }
}

#[test]
fn tool_history_without_tools_gets_minimal_specs() {
    let mut losses = Losses::new();
    let v = encode_request(&with_tools_history(), &mut losses);
    assert_eq!(
        v["toolConfig"]["tools"],
        json!([{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object", "properties": {}}}}}])
    );
    assert!(losses.iter().any(|l| l.path == "tools"));
    // Results and the next user text are one user message; status error kept.
    assert_eq!(v["messages"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["messages"][2]["content"][0]["toolResult"]["status"],
        "error"
    );
    assert_eq!(v["messages"][2]["content"][1]["text"], "and?");
    let back = decode_request(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(back.messages[2].role, Role::Tool);
    assert_eq!(back.messages[3].role, Role::User);
    assert_eq!(back.messages[2].content, vec![result("t1")]);
}

#[test]
fn tool_choice_none() {
    let mut req = Request {
        messages: vec![Message::text(Role::User, "hi")],
        tools: vec![tool("lookup")],
        tool_choice: Some(ToolChoice::None),
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    assert!(v.get("toolConfig").is_none());
    assert_eq!(losses.len(), 1);
    // With tool blocks in the history the tools must stay, without a choice.
    req.messages = with_tools_history().messages;
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    assert_eq!(v["toolConfig"]["tools"][0]["toolSpec"]["name"], "lookup");
    assert!(v["toolConfig"].get("toolChoice").is_none());
    assert_eq!(losses.len(), 1);
    for (choice, wire) in [
        (ToolChoice::Auto, json!({"auto": {}})),
        (ToolChoice::Required, json!({"any": {}})),
        (
            ToolChoice::Tool {
                name: "lookup".into(),
            },
            json!({"tool": {"name": "lookup"}}),
        ),
    ] {
        req.tool_choice = Some(choice.clone());
        let v = encode_request(&req, &mut Losses::new());
        assert_eq!(v["toolConfig"]["toolChoice"], wire);
        let back = decode_request(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
        assert_eq!(back.tool_choice, Some(choice));
    }
}

#[test]
fn generation_settings_and_thinking() {
    let req = Request {
        messages: vec![Message::text(Role::User, "hi")],
        temperature: Some(1.7),
        top_p: Some(0.9),
        top_k: Some(20),
        max_tokens: Some(100),
        stop: vec!["END".into()],
        parallel_tool_calls: Some(false),
        reasoning: Some(ReasoningConfig {
            enabled: Some(true),
            budget_tokens: Some(2048),
            ..ReasoningConfig::default()
        }),
        extensions: vec![
            Extension::new(
                Dialect::Bedrock,
                "additionalModelRequestFields.anthropic_beta",
                json!(["context-1m-2025-08-07"]),
            ),
            Extension::new(Dialect::Bedrock, "serviceTier", json!({"type": "priority"})),
            Extension::new(Dialect::Anthropic, "container", json!("c1")),
        ],
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    assert_eq!(
        v["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]})
    );
    assert_eq!(
        v["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}, "top_k": 20,
               "tool_choice": {"disable_parallel_tool_use": true}, "anthropic_beta": ["context-1m-2025-08-07"]})
    );
    assert_eq!(v["serviceTier"], json!({"type": "priority"}));
    assert!(v.get("container").is_none());
    let paths: Vec<_> = losses.iter().map(|l| (l.kind, l.path.clone())).collect();
    assert!(
        paths.contains(&(LossKind::Approximated, "temperature".into())),
        "{paths:?}"
    );
    assert!(
        paths.contains(&(LossKind::Dropped, "extensions.container".into())),
        "{paths:?}"
    );
    let back = decode_request(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(back.top_k, Some(20));
    assert_eq!(back.parallel_tool_calls, Some(false));
    assert_eq!(back.reasoning.as_ref().unwrap().budget_tokens, Some(2048));
    assert_eq!(back.temperature, Some(1.0));
    assert_eq!(back.extensions.len(), 2);
}

#[test]
fn media_cache_and_reasoning_blocks() {
    let req = Request {
        system: vec![Part::Text {
            text: "sys".into(),
            cache_control: Some(CacheControl {
                ttl: Some("1h".into()),
            }),
            citations: None,
        }],
        messages: vec![
            Message::new(
                Role::User,
                vec![
                    Part::Image {
                        source: MediaSource::Url {
                            url: "https://x/y.png".into(),
                        },
                        detail: None,
                        cache_control: None,
                    },
                    Part::Image {
                        source: MediaSource::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBO".into(),
                        },
                        detail: None,
                        cache_control: None,
                    },
                    Part::Document {
                        source: MediaSource::Base64 {
                            media_type: "application/pdf".into(),
                            data: "JVBE".into(),
                        },
                        title: None,
                        filename: None,
                        cache_control: None,
                    },
                ],
            ),
            Message::new(
                Role::Assistant,
                vec![
                    // A signature-only block must survive: Claude checks the chain.
                    Part::Reasoning {
                        text: String::new(),
                        seal: Some(ReasoningSeal::anthropic_signature("SIG")),
                    },
                    Part::Reasoning {
                        text: String::new(),
                        seal: Some(ReasoningSeal::anthropic_redacted("REDACTED-DATA")),
                    },
                    Part::Reasoning {
                        text: "foreign".into(),
                        seal: Some(ReasoningSeal::openai_encrypted(None, "enc")),
                    },
                    Part::text("answer"),
                ],
            ),
        ],
        ..Request::default()
    };
    let mut losses = Losses::new();
    let v = encode_request(&req, &mut losses);
    assert_eq!(
        v["system"],
        json!([{"text": "sys"}, {"cachePoint": {"type": "default", "ttl": "1h"}}])
    );
    let user = &v["messages"][0]["content"];
    assert_eq!(
        user.as_array().unwrap().len(),
        2,
        "the URL image cannot be sent: {user}"
    );
    assert_eq!(
        user[0]["image"],
        json!({"format": "png", "source": {"bytes": "iVBO"}})
    );
    assert_eq!(user[1]["document"]["name"], "Document 1");
    assert_eq!(user[1]["document"]["format"], "pdf");
    let asst = &v["messages"][1]["content"];
    assert_eq!(
        asst[0],
        json!({"reasoningContent": {"reasoningText": {"text": "", "signature": "SIG"}}})
    );
    let blob = asst[1]["reasoningContent"]["redactedContent"]
        .as_str()
        .unwrap();
    assert_eq!(
        asst.as_array().unwrap().len(),
        3,
        "foreign reasoning goes nowhere upstream"
    );
    let dropped: Vec<_> = losses.iter().map(|l| l.path.clone()).collect();
    assert!(
        dropped.contains(&"messages[0].content[0]".to_string()),
        "{dropped:?}"
    );
    assert!(
        dropped.contains(&"messages[1].content[2]".to_string()),
        "{dropped:?}"
    );
    let back = decode_request(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(back.system, req.system);
    assert_eq!(back.messages[1].content[0], req.messages[1].content[0]);
    assert_eq!(back.messages[1].content[1], req.messages[1].content[1]);
    assert_eq!(
        crate::request::redacted_seal(blob),
        Some(ReasoningSeal::anthropic_redacted("REDACTED-DATA"))
    );
}

#[test]
fn foreign_seals_reach_clients_wrapped() {
    let resp = dragoman_model::Response {
        id: "x".into(),
        model: String::new(),
        content: vec![Part::Reasoning {
            text: "t".into(),
            seal: Some(ReasoningSeal::openai_encrypted(Some("rs_1".into()), "enc")),
        }],
        stop: StopReason::EndTurn,
        usage: Usage::default(),
        extensions: Vec::new(),
    };
    let v = encode_response(&resp, &mut Losses::new());
    let back = decode_response(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
    assert_eq!(back.content, resp.content);
}

#[test]
fn every_stop_reason_round_trips() {
    for (wire, canon) in [
        ("end_turn", StopReason::EndTurn),
        ("tool_use", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence { matched: None }),
        (
            "model_context_window_exceeded",
            StopReason::ContextWindowExceeded,
        ),
        ("guardrail_intervened", StopReason::ContentFilter),
        ("content_filtered", StopReason::ContentFilter),
        ("malformed_model_output", StopReason::EndTurn),
        ("malformed_tool_use", StopReason::EndTurn),
    ] {
        let body = json!({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
                          "stopReason": wire, "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
                          "metrics": {"latencyMs": 1}});
        let r = decode_response(body.to_string().as_bytes(), &mut Losses::new()).unwrap();
        // tool_use without a tool call reconciles to an ordinary end.
        assert_eq!(r.stop, canon, "{wire}");
        let v = encode_response(&r, &mut Losses::new());
        let expect = if wire == "tool_use" { "end_turn" } else { wire };
        assert_eq!(v["stopReason"], expect, "{wire}");
        assert_eq!(v["metrics"], json!({"latencyMs": 1}));
    }
}

#[test]
fn usage_writes_the_sum_and_the_split() {
    let u = Usage {
        input_uncached: Some(3),
        cache_read: Some(10),
        cache_write: Some(7),
        cache_write_5m: Some(2),
        cache_write_1h: Some(5),
        output: Some(4),
        ..Usage::default()
    };
    let v = crate::usage::encode(&u);
    assert_eq!(v["totalTokens"], 24);
    assert_eq!(
        v["cacheDetails"],
        json!([{"inputTokens": 5, "ttl": "1h"}, {"inputTokens": 2, "ttl": "5m"}])
    );
    assert_eq!(crate::usage::decode(&v), u);
}

#[test]
fn error_kinds_and_bodies() {
    for (t, kind) in [
        (
            "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            ErrorKind::InvalidRequest,
        ),
        (
            "com.amazon.coral#ThrottlingException",
            ErrorKind::RateLimited,
        ),
        ("throttlingException", ErrorKind::RateLimited),
        ("AccessDeniedException", ErrorKind::Permission),
        ("ResourceNotFoundException", ErrorKind::NotFound),
        ("ModelTimeoutException", ErrorKind::Timeout),
        ("ModelErrorException", ErrorKind::Server),
        ("modelStreamErrorException", ErrorKind::Server),
        ("ModelNotReadyException", ErrorKind::Overloaded),
        ("ServiceUnavailableException", ErrorKind::Overloaded),
        ("InternalServerException", ErrorKind::Server),
        ("ServiceQuotaExceededException", ErrorKind::RateLimited),
        ("UnrecognizedClientException", ErrorKind::Authentication),
    ] {
        assert_eq!(error_kind_from_type(t, Some(400)), kind, "{t}");
    }
    assert_eq!(
        error_kind_from_type("Whatever", Some(404)),
        ErrorKind::NotFound
    );
    let e = decode_error(
        Some(429),
        br#"{"Message":"slow down","__type":"ThrottlingException"}"#,
    );
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::RateLimited, "slow down")
    );
    assert_eq!(
        decode_error(Some(502), b"<html>bad gateway</html>").kind,
        ErrorKind::Server
    );
    let (s, body) = encode_error(&ErrorBody::new(ErrorKind::Overloaded, "busy"));
    assert_eq!(
        (s, body),
        (
            503,
            json!({"message": "busy", "__type": "ServiceUnavailableException"})
        )
    );
    let ev = stream_error_event(&ErrorBody::new(ErrorKind::RateLimited, "slow"));
    assert_eq!(ev.name(), "throttlingException");
    // A stream exception keeps its own name when it means the same kind.
    let mut e = ErrorBody::new(ErrorKind::Server, "m");
    e.type_name = Some("modelStreamErrorException".into());
    assert_eq!(stream_error_event(&e).name(), "modelStreamErrorException");
    assert!(validate(&[stream_error_event(&e)]).is_ok());
    assert_eq!(
        check_response(br#"{"message":"The provided model identifier is invalid."}"#),
        Err(dragoman_model::ResponseFault::Failed(decode_error(
            None,
            br#"{"message":"The provided model identifier is invalid."}"#
        )))
    );
}

fn encode_stream(events: &[StreamEvent]) -> Vec<dragoman_sse::Event> {
    let mut enc = StreamEncoder::new(StreamOptions::default());
    let mut out = Vec::new();
    let mut losses = Losses::new();
    for e in events {
        enc.push(e, &mut out, &mut losses);
    }
    out
}

fn decode_stream(events: &[dragoman_sse::Event]) -> Vec<StreamEvent> {
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for e in events {
        dec.push(e, &mut out).unwrap();
    }
    out
}

#[test]
fn hand_written_deltas_equal_the_tree_form() {
    let tricky = "quote \" backslash \\ newline \n ctrl \u{1} é 😀";
    let out = encode_stream(&[
        StreamEvent::MessageStart {
            id: "m".into(),
            model: String::new(),
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
            delta: Delta::Reasoning(tricky.into()),
        },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::Text,
        },
        StreamEvent::BlockDelta {
            index: 1,
            delta: Delta::Text(tricky.into()),
        },
        StreamEvent::BlockStart {
            index: 2,
            block: BlockKind::ToolCall {
                id: "t".into(),
                name: "f".into(),
                kind: ToolKind::Function,
            },
        },
        StreamEvent::BlockDelta {
            index: 2,
            delta: Delta::Arguments(tricky.into()),
        },
    ]);
    let trees = [
        json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": tricky}}}),
        json!({"contentBlockIndex": 1, "delta": {"text": tricky}}),
        json!({"contentBlockIndex": 2, "delta": {"toolUse": {"input": tricky}}}),
    ];
    let deltas: Vec<_> = out
        .iter()
        .filter(|e| e.name() == "contentBlockDelta")
        .collect();
    assert_eq!(deltas.len(), 3);
    for (e, t) in deltas.iter().zip(trees) {
        assert_eq!(e.data, t.to_string());
    }
}

#[test]
fn usage_waits_for_metadata_and_padding_is_ignored() {
    let evs = [
        dragoman_sse::Event::named("messageStart", r#"{"p":"abc","role":"assistant"}"#),
        dragoman_sse::Event::named(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":""},"p":"a"}"#,
        ),
        dragoman_sse::Event::named(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#,
        ),
        dragoman_sse::Event::named("contentBlockStop", r#"{"contentBlockIndex":0,"p":"ab"}"#),
        dragoman_sse::Event::named(
            "messageStop",
            r#"{"stopReason":"stop_sequence","additionalModelResponseFields":{"delta":{"stop_sequence":"END"}},"p":"a"}"#,
        ),
    ];
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for e in &evs {
        dec.push(e, &mut out).unwrap();
    }
    assert!(
        !out.iter()
            .any(|e| matches!(e, StreamEvent::MessageDelta { .. }))
    );
    dec.push(
        &dragoman_sse::Event::named("metadata", r#"{"usage":{"inputTokens":5,"outputTokens":1,"totalTokens":6},"metrics":{"latencyMs":9},"p":"x"}"#),
        &mut out,
    )
    .unwrap();
    let r = collect(&out).unwrap();
    assert_eq!(r.content, vec![Part::text("Hi")]);
    assert_eq!(
        r.stop,
        StopReason::StopSequence {
            matched: Some("END".into())
        }
    );
    assert_eq!(r.usage.input_uncached, Some(5));
    let enc = encode_stream(&out);
    validate(&enc).unwrap();
    assert_eq!(enc.last().unwrap().name(), "metadata");
}

#[test]
fn stream_exceptions_become_errors() {
    for (name, kind) in [
        ("internalServerException", ErrorKind::Server),
        ("modelStreamErrorException", ErrorKind::Server),
        ("validationException", ErrorKind::InvalidRequest),
        ("throttlingException", ErrorKind::RateLimited),
        ("serviceUnavailableException", ErrorKind::Overloaded),
        ("modelTimeoutException", ErrorKind::Timeout),
    ] {
        let out = decode_stream(&[
            dragoman_sse::Event::named("messageStart", r#"{"role":"assistant"}"#),
            dragoman_sse::Event::named(name, r#"{"message":"boom"}"#),
        ]);
        let Some(StreamEvent::Error { error }) = out.last() else {
            panic!("{name}: {out:?}");
        };
        assert_eq!(
            (error.kind, error.message.as_str()),
            (kind, "boom"),
            "{name}"
        );
        let enc = encode_stream(&out);
        assert_eq!(enc.last().unwrap().name(), name);
    }
}

fn arb_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        "[a-z ]{1,12}".prop_map(Part::text),
        ("[a-z]{0,8}", "[A-Za-z0-9+/]{1,16}").prop_map(|(t, s)| Part::Reasoning {
            text: t,
            seal: Some(ReasoningSeal::anthropic_signature(s)),
        }),
        "[a-z]{1,8}".prop_map(|d| Part::Reasoning {
            text: String::new(),
            seal: Some(ReasoningSeal::anthropic_redacted(d)),
        }),
        ("[a-z]{1,6}", 0u8..5).prop_map(|(n, a)| Part::ToolCall {
            id: format!("tooluse_{n}"),
            name: n,
            arguments: format!(r#"{{"a":{a}}}"#),
            kind: ToolKind::Function,
        }),
    ]
}

proptest! {
    #[test]
    fn response_streams_round_trip(
        parts in prop::collection::vec(arb_part(), 0..6),
        input in 0u64..1000, output in 0u64..1000, read in prop::option::of(0u64..1000),
    ) {
        let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
        let resp = dragoman_model::Response {
            id: "x".into(),
            model: String::new(),
            content: parts,
            stop: if has_calls { StopReason::ToolUse } else { StopReason::EndTurn },
            usage: Usage { input_uncached: Some(input), output: Some(output), cache_read: read, ..Usage::default() },
            extensions: Vec::new(),
        };
        let wire = encode_stream(&response_events(&resp));
        validate(&wire).unwrap();
        let framed = dragoman_eventstream::decode_all(&dragoman_eventstream::encode_all(&wire)).unwrap();
        let back = collect(&decode_stream(&framed)).unwrap();
        prop_assert_eq!(&back.content, &resp.content);
        prop_assert_eq!(&back.stop, &resp.stop);
        prop_assert_eq!(back.usage, resp.usage);
        // The whole-response codec agrees with the stream.
        let v = encode_response(&resp, &mut Losses::new());
        let r = decode_response(v.to_string().as_bytes(), &mut Losses::new()).unwrap();
        prop_assert_eq!(&r.content, &resp.content);
    }

    #[test]
    fn no_input_panics(name in prop_oneof![
            Just("messageStart"), Just("contentBlockStart"), Just("contentBlockDelta"),
            Just("contentBlockStop"), Just("messageStop"), Just("metadata"), Just("xException")],
        data in prop_oneof![
            "\\PC{0,40}",
            Just(r#"{"contentBlockIndex":0,"delta":{"toolUse":{"input":"x"}}}"#.to_owned()),
            Just(r#"{"contentBlockIndex":1,"start":{"toolUse":{}}}"#.to_owned()),
            Just(r#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"%%"}}}"#.to_owned()),
        ],
    ) {
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        let _ = dec.push(&dragoman_sse::Event::named(name, data.clone()), &mut out);
        let _ = decode_request(data.as_bytes(), &mut Losses::new());
        let _ = decode_response(data.as_bytes(), &mut Losses::new());
        let _ = check_response(data.as_bytes());
        let _ = decode_error(None, data.as_bytes());
        let _ = validate(&[dragoman_sse::Event::named(name, data)]);
    }
}

#[test]
fn validator_rejects_broken_grammar() {
    let ev = |n: &str, d: &str| dragoman_sse::Event::named(n, d);
    let start = ev("messageStart", r#"{"role":"assistant"}"#);
    let stop = ev("messageStop", r#"{"stopReason":"end_turn"}"#);
    let meta = ev(
        "metadata",
        r#"{"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#,
    );
    let delta = ev(
        "contentBlockDelta",
        r#"{"contentBlockIndex":0,"delta":{"text":"a"}}"#,
    );
    let bstop = ev("contentBlockStop", r#"{"contentBlockIndex":0}"#);
    assert!(
        validate(&[
            start.clone(),
            delta.clone(),
            bstop.clone(),
            stop.clone(),
            meta.clone()
        ])
        .is_ok()
    );
    assert!(
        validate(&[start.clone(), stop.clone()]).is_err(),
        "no metadata"
    );
    assert!(
        validate(&[start.clone(), delta.clone(), stop.clone(), meta.clone()]).is_err(),
        "open block"
    );
    assert!(
        validate(&[start.clone(), delta.clone(), bstop.clone(), delta.clone()]).is_err(),
        "delta after stop"
    );
    assert!(validate(std::slice::from_ref(&delta)).is_err(), "no start");
    assert!(
        validate(&[start.clone(), stop.clone(), meta.clone(), meta.clone()]).is_err(),
        "after end"
    );
    assert!(
        validate(&[start, ev("contentBlockDelta", "{")]).is_err(),
        "not JSON"
    );
}

#[test]
fn opaque_content_of_other_dialects_is_reported() {
    let mut losses = Losses::new();
    let req = Request {
        messages: vec![Message::new(
            Role::User,
            vec![
                Part::text("x"),
                Part::Opaque {
                    dialect: Dialect::Gemini,
                    value: json!({"executableCode": {}}),
                },
            ],
        )],
        ..Request::default()
    };
    let v = encode_request(&req, &mut losses);
    assert_eq!(v["messages"][0]["content"].as_array().unwrap().len(), 1);
    assert_eq!(losses.len(), 1);
    let _: Value = v;
}
