//! Tests on every recording under `test_data/anthropic/` and on hand-written cases for the
//! rules recordings do not exercise (cross-dialect encoding, usage merging, buffering).

use std::path::PathBuf;

use dragoman_model::{
    BlockKind, Delta, Dialect, ErrorBody, ErrorKind, Family, LossKind, Losses, Message, Part,
    ReasoningConfig, ReasoningSeal, Request, Response, ResponseFormat, Role, StopReason,
    StreamEvent, StreamOptions, Tool, ToolKind, Usage, collect,
};
use dragoman_sse::Event;
use serde_json::{Value, json};

use crate::*;

fn data_files(sub: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test_data/anthropic")
        .join(sub);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {}", dir.display());
    out
}

/// The encoder writes required usage counts as 0 where unknown; compare modulo that.
fn norm_usage(u: &mut Usage) {
    for f in [
        &mut u.input_uncached,
        &mut u.cache_read,
        &mut u.cache_write,
        &mut u.output,
    ] {
        f.get_or_insert(0);
    }
}

fn loss_list(l: &Losses) -> Vec<String> {
    l.iter().map(ToString::to_string).collect()
}

// ---------------------------------------------------------------------------------------------
// (a) requests

#[test]
fn every_request_recording_round_trips() {
    for (name, body) in data_files("requests", "json") {
        let raw: Value = serde_json::from_slice(&body).unwrap();
        let mut l1 = Losses::new();
        if raw.get("messages").is_none() {
            // A recording of another dialect filed here; it must be refused, naming the field.
            let err = decode_request(&body, &mut l1).unwrap_err();
            assert_eq!(err.path, "messages", "{name}");
            continue;
        }
        let req = decode_request(&body, &mut l1).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(l1.is_empty(), "{name}: decode losses {:?}", loss_list(&l1));
        let mut l2 = Losses::new();
        let wire = encode_request(&req, &mut l2);
        assert!(l2.is_empty(), "{name}: encode losses {:?}", loss_list(&l2));
        let mut l3 = Losses::new();
        let again = decode_request(wire.to_string().as_bytes(), &mut l3).unwrap();
        assert_eq!(again, req, "{name}");
        assert!(l3.is_empty(), "{name}");
    }
}

#[test]
fn claude_code_requests_keep_their_shape() {
    let files = data_files("requests", "json");
    let (_, body) = files
        .iter()
        .find(|(n, _)| n == "client__claude-code-tool-followup.json")
        .unwrap();
    let mut l = Losses::new();
    let req = decode_request(body, &mut l).unwrap();
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::System, Role::Assistant, Role::Tool]
    );
    assert!(req.user.is_some());
    assert!(
        req.extensions
            .iter()
            .any(|e| e.key == "context_management" && e.dialect == Dialect::Anthropic)
    );
    let wire = encode_request(&req, &mut l);
    assert_eq!(wire["messages"][1]["role"], "system");
    assert_eq!(
        wire["context_management"],
        json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]})
    );
    assert!(wire["metadata"]["user_id"].is_string());
}

// ---------------------------------------------------------------------------------------------
// (b) responses

#[test]
fn every_response_recording_round_trips() {
    for (name, body) in data_files("responses", "json") {
        let mut l1 = Losses::new();
        let mut resp = decode_response(&body, &mut l1).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut l2 = Losses::new();
        let wire = encode_response(&resp, &mut l2);
        assert!(l2.is_empty(), "{name}: encode losses {:?}", loss_list(&l2));
        let mut again = decode_response(wire.to_string().as_bytes(), &mut l1).unwrap();
        norm_usage(&mut resp.usage);
        norm_usage(&mut again.usage);
        assert_eq!(again, resp, "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// (c) streams

fn decode_events(events: &[Event]) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for e in events {
        d.push(e, &mut out).unwrap();
    }
    d.finish(&mut out);
    out
}

fn decode_bytes_split(bytes: &[u8], cuts: &[usize]) -> Vec<StreamEvent> {
    let mut sse = dragoman_sse::Decoder::new();
    let mut events = Vec::new();
    let mut last = 0;
    for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
        let c = c.min(bytes.len());
        if c > last {
            sse.push(&bytes[last..c], &mut events).unwrap();
            last = c;
        }
    }
    sse.finish(&mut events).unwrap();
    decode_events(&events)
}

fn encode_events(events: &[StreamEvent], opts: StreamOptions) -> (Vec<Event>, Losses) {
    let mut enc = StreamEncoder::new(opts);
    let mut out = Vec::new();
    let mut losses = Losses::new();
    for e in events {
        enc.push(e, &mut out, &mut losses);
    }
    enc.finish(&mut out, &mut losses);
    (out, losses)
}

/// Canonical events as compared across a re-encoding: no pings, required usage counts filled,
/// errors compared by kind and message, and block stops the encoder adds before an error
/// (Anthropic clients need closed blocks) removed.
fn comparable(events: &[StreamEvent]) -> Vec<StreamEvent> {
    let mut out: Vec<StreamEvent> = Vec::new();
    for e in events {
        match e {
            StreamEvent::Ping => {}
            StreamEvent::MessageStart { id, model, usage } => {
                let mut usage = *usage;
                norm_usage(&mut usage);
                usage.output = Some(0);
                out.push(StreamEvent::MessageStart {
                    id: id.clone(),
                    model: model.clone(),
                    usage,
                });
            }
            StreamEvent::MessageDelta { stop, usage } => {
                let mut usage = *usage;
                norm_usage(&mut usage);
                out.push(StreamEvent::MessageDelta {
                    stop: stop.clone(),
                    usage,
                });
            }
            StreamEvent::Error { error } => {
                while matches!(out.last(), Some(StreamEvent::BlockStop { .. })) {
                    out.pop();
                }
                out.push(StreamEvent::Error {
                    error: ErrorBody::new(error.kind, error.message.clone()),
                });
            }
            other => out.push(other.clone()),
        }
    }
    out
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

#[test]
fn every_stream_recording_decodes_reencodes_and_validates() {
    let mut rng = Lcg(7);
    for (name, bytes) in data_files("streams", "sse") {
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        let canon = decode_events(&events);
        let wire_terminal = events.iter().rev().find_map(|e| {
            let v: Value = serde_json::from_str(&e.data).ok()?;
            let t = v.get("type")?.as_str()?.to_owned();
            (t != "ping").then_some(t)
        });
        match canon.last() {
            Some(StreamEvent::Error { .. }) => assert_ne!(
                wire_terminal.as_deref(),
                Some("message_stop"),
                "{name}: decoded to an error but the recording ends well"
            ),
            _ => {
                collect(&canon).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
        }

        let (wire, losses) = encode_events(&canon, StreamOptions::default());
        assert!(losses.is_empty(), "{name}: {:?}", loss_list(&losses));
        validate(&wire).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = decode_bytes_split(&dragoman_sse::encode_all(&wire), &[]);
        assert_eq!(comparable(&again), comparable(&canon), "{name}");

        let sevens: Vec<usize> = (7..bytes.len()).step_by(7).collect();
        assert_eq!(
            decode_bytes_split(&bytes, &sevens),
            canon,
            "{name} split by 7"
        );
        let mut cuts: Vec<usize> = (0..12).map(|_| rng.next(bytes.len())).collect();
        cuts.sort_unstable();
        assert_eq!(
            decode_bytes_split(&bytes, &cuts),
            canon,
            "{name} split at {cuts:?}"
        );
    }
}

#[test]
fn recordings_with_thinking_and_tools_decode_to_the_right_blocks() {
    let files = data_files("streams", "sse");
    let get = |n: &str| {
        let (_, b) = files.iter().find(|(f, _)| f == n).unwrap();
        decode_events(&dragoman_sse::decode_all(b).unwrap())
    };
    let r = collect(&get(
        "pydantic-ai__test_anthropic_model_thinking_part_stream.sse",
    ))
    .unwrap();
    assert!(matches!(
        &r.content[0],
        Part::Reasoning { seal: Some(s), .. } if s.family == Family::Anthropic
    ));
    let r = collect(&get("vercel-ai__anthropic-tool-no-args.sse")).unwrap();
    assert!(r.content.iter().any(|p| matches!(p, Part::ToolCall { .. })));
    assert_eq!(r.stop, StopReason::ToolUse);
    let r = collect(&get("vercel-ai__spliced-message-start.s2.sse")).unwrap();
    assert_eq!(r.id, "msg_second");
    // The web-search stream raises input_tokens in message_delta: the final number wins.
    let r = collect(&get(
        "pydantic-ai__test_anthropic_model_web_search_tool_stream.sse",
    ))
    .unwrap();
    assert_eq!(r.usage.input_uncached, Some(22397));
    assert_eq!(r.usage.web_search_requests, Some(2));
}

#[test]
fn duplicate_message_start_yields_one_start() {
    let start = r#"{"type":"message_start","message":{"id":"msg_a","type":"message","role":"assistant","content":[],"model":"m","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":17,"output_tokens":1}}}"#;
    let events = vec![
        Event::named("message_start", start),
        Event::named("message_start", start.replace("17", "19")),
        Event::named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#,
        ),
        Event::named("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let canon = decode_events(&events);
    let starts = canon
        .iter()
        .filter(|e| matches!(e, StreamEvent::MessageStart { .. }))
        .count();
    assert_eq!(starts, 1);
    let r = collect(&canon).unwrap();
    assert_eq!(r.usage.input_uncached, Some(19));
    assert_eq!(r.usage.output, Some(5));
}

#[test]
fn malformed_stream_json_names_the_event() {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    d.push(&Event::named("ping", r#"{"type":"ping"}"#), &mut out)
        .unwrap();
    let err = d
        .push(&Event::named("message_start", "{not json"), &mut out)
        .unwrap_err();
    assert_eq!(err.path, "event[1] (message_start)");
}

#[test]
fn missing_message_delta_becomes_end_turn() {
    let events = vec![
        Event::named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m1","model":"x","usage":{"input_tokens":3,"output_tokens":1}}}"#,
        ),
        Event::named(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        Event::named(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#,
        ),
        Event::named("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let r = collect(&decode_events(&events)).unwrap();
    assert_eq!(r.stop, StopReason::EndTurn);
    assert_eq!(r.content, vec![Part::text("hi")]);
}

// ---------------------------------------------------------------------------------------------
// (d) errors

#[test]
fn every_error_recording_gets_its_kind() {
    for (name, body) in data_files("errors", "json") {
        let v: Value = serde_json::from_slice(&body).unwrap();
        let status = v["status"].as_u64().map(|s| s as u16);
        let inner = serde_json::to_vec(&v["body"]).unwrap();
        let err = decode_error(status, &inner);
        let expected = match v["body"]["error"]["type"].as_str() {
            Some("invalid_request_error") => ErrorKind::InvalidRequest,
            Some("not_found_error") => ErrorKind::NotFound,
            Some(other) => panic!("{name}: add {other}"),
            // Not an error envelope (another dialect's body filed here): the status decides.
            None => ErrorKind::from_status(status.unwrap_or(500)),
        };
        assert_eq!(err.kind, expected, "{name}");
        assert_eq!(err.status, status);
        let (code, out) = encode_error(&err);
        assert_eq!(code, expected.status());
        assert_eq!(out["type"], "error");
    }
}

#[test]
fn errors_decode_leniently_and_encode_with_anthropic_types() {
    let e = decode_error(Some(529), b"<html>Overloaded</html>");
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(e.message, "<html>Overloaded</html>");
    let e = decode_error(
        Some(500),
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(e.kind, ErrorKind::Overloaded);
    assert_eq!(
        encode_error(&e),
        (
            529,
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
        )
    );
    let mut foreign = ErrorBody::new(ErrorKind::RateLimited, "slow down");
    foreign.type_name = Some("insufficient_quota".into());
    assert_eq!(
        encode_error(&foreign).1["error"]["type"],
        "rate_limit_error"
    );
    let ev = stream_error_event(&ErrorBody::new(ErrorKind::Server, "boom"));
    assert_eq!(ev.event.as_deref(), Some("error"));
    validate(&[ev]).unwrap();
}

// ---------------------------------------------------------------------------------------------
// (e) named cases

fn start(usage: Usage) -> StreamEvent {
    StreamEvent::MessageStart {
        id: "msg_1".into(),
        model: "m".into(),
        usage,
    }
}

fn data(ev: &Event) -> Value {
    serde_json::from_str(&ev.data).unwrap()
}

#[test]
fn message_delta_usage_merges_with_message_start() {
    let events = vec![
        Event::named(
            "message_start",
            r#"{"type":"message_start","message":{"id":"m","model":"x","content":[],"usage":{"input_tokens":3,"cache_read_input_tokens":4004,"cache_creation_input_tokens":10,"output_tokens":1}}}"#,
        ),
        Event::named(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":50}}"#,
        ),
        Event::named("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let canon = decode_events(&events);
    let Some(StreamEvent::MessageDelta { usage, .. }) = canon
        .iter()
        .find(|e| matches!(e, StreamEvent::MessageDelta { .. }))
    else {
        panic!("no message delta")
    };
    assert_eq!(
        (
            usage.input_uncached,
            usage.cache_read,
            usage.cache_write,
            usage.output
        ),
        (Some(3), Some(4004), Some(10), Some(50))
    );
}

#[test]
fn encoder_uses_the_estimate_at_start_and_exact_buckets_at_the_end() {
    let canon = vec![
        start(Usage::default()),
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Text,
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Text("hi".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop: StopReason::EndTurn,
            usage: Usage {
                input_uncached: Some(210),
                cache_read: Some(1024),
                output: Some(7),
                ..Usage::default()
            },
        },
        StreamEvent::MessageStop,
    ];
    let opts = StreamOptions {
        input_estimate: Some(1200),
        ..StreamOptions::default()
    };
    let (wire, losses) = encode_events(&canon, opts);
    assert!(losses.is_empty());
    validate(&wire).unwrap();
    assert_eq!(data(&wire[0])["message"]["usage"]["input_tokens"], 1200);
    let delta = wire
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(
        data(delta)["usage"],
        json!({"input_tokens": 210, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 7})
    );
    assert_eq!(data(delta)["delta"]["stop_sequence"], Value::Null);
}

#[test]
fn interleaved_tool_calls_are_serialized() {
    let call = |i: usize, id: &str| StreamEvent::BlockStart {
        index: i,
        block: BlockKind::ToolCall {
            id: id.into(),
            name: "f".into(),
            kind: ToolKind::Function,
        },
    };
    let args = |i: usize, a: &str| StreamEvent::BlockDelta {
        index: i,
        delta: Delta::Arguments(a.into()),
    };
    let canon = vec![
        start(Usage::default()),
        call(0, "call_a"),
        call(1, "call_b"),
        args(0, "{\"x\":"),
        args(1, "{\"y\":"),
        args(0, "1}"),
        args(1, "2}"),
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop: StopReason::ToolUse,
            usage: Usage::default(),
        },
        StreamEvent::MessageStop,
    ];
    let (wire, losses) = encode_events(&canon, StreamOptions::default());
    assert!(losses.is_empty());
    validate(&wire).unwrap();
    let r = collect(&decode_events(&wire)).unwrap();
    let calls: Vec<(String, String)> = r
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall { id, arguments, .. } => Some((id.clone(), arguments.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("call_a".to_owned(), "{\"x\":1}".to_owned()),
            ("call_b".to_owned(), "{\"y\":2}".to_owned())
        ]
    );
}

#[test]
fn truncated_canonical_stream_ends_with_an_error_event() {
    let canon = vec![
        start(Usage::default()),
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Text,
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Text("partial".into()),
        },
    ];
    let (wire, _) = encode_events(&canon, StreamOptions::default());
    validate(&wire).unwrap();
    let names: Vec<&str> = wire.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "error"
        ]
    );
    assert_eq!(data(&wire[4])["error"]["type"], "api_error");
}

#[test]
fn foreign_seal_survives_a_response_and_comes_back_in_history() {
    let seal = ReasoningSeal::openai_encrypted(Some("rs_1".into()), "gAAAA-opaque");
    let resp = Response {
        id: "msg_1".into(),
        model: "gpt-5".into(),
        content: vec![
            Part::Reasoning {
                text: "thought".into(),
                seal: Some(seal.clone()),
            },
            Part::text("answer"),
        ],
        stop: StopReason::EndTurn,
        usage: Usage::default(),
        extensions: vec![],
    };
    let mut l = Losses::new();
    let wire = encode_response(&resp, &mut l);
    assert!(l.is_empty());
    let body = json!({
        "model": "gpt-5", "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": wire["content"]},
            {"role": "user", "content": "more"},
        ]
    });
    let req = decode_request(body.to_string().as_bytes(), &mut l).unwrap();
    assert_eq!(
        req.messages[1].content[0],
        Part::Reasoning {
            text: "thought".into(),
            seal: Some(seal)
        }
    );
    // Sending that history to Anthropic must drop the foreign seal, and say so.
    let mut l = Losses::new();
    let out = encode_request(&req, &mut l);
    assert_eq!(out["messages"][1]["content"], json!("answer"));
    assert!(
        l.iter()
            .any(|x| x.kind == LossKind::Dropped && x.path == "messages[1].content[0]")
    );
}

#[test]
fn system_message_in_the_middle_is_accepted() {
    let body = json!({
        "model": "claude-opus-5-5", "max_tokens": 10,
        "messages": [
            {"role": "system", "content": "lead"},
            {"role": "user", "content": "hi"},
            {"role": "system", "content": [{"type": "text", "text": "mid"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}, {"type": "text", "text": "next"}]},
        ]
    });
    let mut l = Losses::new();
    let req = decode_request(body.to_string().as_bytes(), &mut l).unwrap();
    assert_eq!(req.system, vec![Part::text("lead")]);
    let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::System, Role::Tool, Role::User]);
    let out = encode_request(&req, &mut l);
    assert_eq!(out["system"], "lead");
    assert_eq!(
        out["messages"][1],
        json!({"role": "system", "content": "mid"})
    );
    assert_eq!(out["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(out["messages"][2]["content"][1]["text"], "next");
    assert!(l.is_empty(), "{:?}", loss_list(&l));
}

#[test]
fn malformed_requests_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"model":"m","messages":{}}"#, "messages"),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]}"#,
            "messages[0].content[0].type",
        ),
        (
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image"}]}]}"#,
            "messages[0].content[0].source",
        ),
        (
            r#"{"model":"m","messages":[{"role":"bot","content":"x"}]}"#,
            "messages[0].role",
        ),
        (r#"{"model":"m","messages":[]"#, "$"),
        (r#"{"messages":[]}"#, "model"),
    ];
    for (body, path) in cases {
        let err = decode_request(body.as_bytes(), &mut Losses::new()).unwrap_err();
        assert_eq!(&err.path, path, "{body}: {err}");
    }
}

#[test]
fn requests_from_other_dialects_follow_anthropic_rules() {
    let req = Request {
        model: "claude-sonnet-4-5".into(),
        system: vec![],
        messages: vec![
            Message::text(Role::Developer, "be terse"),
            Message::text(Role::User, "hi"),
            Message::new(
                Role::Assistant,
                vec![
                    Part::text(""),
                    Part::Reasoning {
                        text: "hmm".into(),
                        seal: None,
                    },
                    Part::ToolCall {
                        id: "call_1".into(),
                        name: "grep".into(),
                        arguments: "needle".into(),
                        kind: ToolKind::Custom,
                    },
                    Part::ToolCall {
                        id: "call_2".into(),
                        name: "f".into(),
                        arguments: String::new(),
                        kind: ToolKind::Function,
                    },
                ],
            ),
            Message::new(
                Role::Tool,
                vec![Part::ToolResult {
                    call_id: "call_1".into(),
                    content: vec![Part::text("found")],
                    is_error: false,
                    kind: ToolKind::Custom,
                    cache_control: None,
                }],
            ),
            Message::new(
                Role::Tool,
                vec![Part::ToolResult {
                    call_id: "call_2".into(),
                    content: vec![Part::text("ok")],
                    is_error: true,
                    kind: ToolKind::Function,
                    cache_control: None,
                }],
            ),
            Message::new(Role::User, vec![Part::Refusal { text: "no".into() }]),
        ],
        tools: vec![
            Tool::Custom {
                name: "grep".into(),
                description: None,
                format: None,
            },
            Tool::Function {
                name: "f".into(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: Some(true),
                cache_control: None,
            },
            Tool::Opaque {
                dialect: Dialect::Responses,
                value: json!({"type": "web_search"}),
            },
        ],
        parallel_tool_calls: Some(false),
        temperature: Some(1.5),
        seed: Some(3),
        response_format: Some(ResponseFormat::JsonSchema {
            name: Some("x".into()),
            schema: json!({"type": "object"}),
            strict: Some(true),
            description: None,
        }),
        reasoning: Some(ReasoningConfig {
            enabled: Some(true),
            effort: Some(dragoman_model::Effort::High),
            ..ReasoningConfig::default()
        }),
        user: Some("u1".into()),
        extensions: vec![dragoman_model::Extension::new(
            Dialect::Chat,
            "logit_bias",
            json!({}),
        )],
        ..Request::default()
    };
    let mut l = Losses::new();
    let out = encode_request(&req, &mut l);
    assert_eq!(out["max_tokens"], 64000);
    assert_eq!(out["system"], "be terse");
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    assert_eq!(out["output_config"]["format"]["type"], "json_schema");
    assert_eq!(out["metadata"], json!({"user_id": "u1"}));
    assert_eq!(
        out["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(out["tools"].as_array().unwrap().len(), 2);
    assert_eq!(
        out["tools"][0]["input_schema"]["properties"]["input"]["type"],
        "string"
    );
    let asst = &out["messages"][1]["content"];
    assert_eq!(asst.as_array().unwrap().len(), 2, "{asst}");
    assert_eq!(asst[0]["input"], json!({"input": "needle"}));
    assert_eq!(asst[1]["input"], json!({}));
    let user = &out["messages"][2];
    assert_eq!(user["role"], "user");
    assert_eq!(user["content"].as_array().unwrap().len(), 3);
    assert_eq!(user["content"][1]["is_error"], true);
    assert_eq!(user["content"][2], json!({"type": "text", "text": "no"}));
    assert_eq!(out["messages"].as_array().unwrap().len(), 3);
    let paths: Vec<&str> = l.iter().map(|x| x.path.as_str()).collect();
    for p in [
        "max_tokens",
        "temperature",
        "seed",
        "tools[0]",
        "tools[2]",
        "messages[2].content[1]",
        "messages[2].content[2].input",
        "messages[5].content[0]",
        "reasoning.effort",
        "extensions.logit_bias",
    ] {
        assert!(paths.contains(&p), "missing loss {p} in {paths:?}");
    }
}

#[test]
fn default_max_tokens_table() {
    assert_eq!(default_max_tokens("claude-3-haiku-20240307"), 4096);
    assert_eq!(default_max_tokens("claude-3-5-sonnet-20241022"), 8192);
    assert_eq!(default_max_tokens("claude-opus-4-20250514"), 32000);
    assert_eq!(default_max_tokens("claude-opus-4-1"), 32000);
    assert_eq!(default_max_tokens("claude-opus-4-5"), 64000);
    assert_eq!(default_max_tokens("claude-sonnet-4-5"), 64000);
    assert_eq!(default_max_tokens("gpt-5"), 8192);
}

#[test]
fn effort_only_and_adaptive_requests_round_trip() {
    let body = json!({"model": "claude-opus-5-5", "max_tokens": 100, "messages": [],
        "output_config": {"effort": "low"}});
    let mut l = Losses::new();
    let req = decode_request(body.to_string().as_bytes(), &mut l).unwrap();
    let out = encode_request(&req, &mut l);
    assert!(out.get("thinking").is_none());
    assert_eq!(out["output_config"], json!({"effort": "low"}));
}

#[test]
fn response_encoder_handles_other_dialects() {
    let resp = Response {
        id: "chatcmpl-1".into(),
        model: "gpt".into(),
        content: vec![
            Part::Refusal {
                text: "cannot".into(),
            },
            Part::Reasoning {
                text: "r".into(),
                seal: None,
            },
            Part::Opaque {
                dialect: Dialect::Responses,
                value: json!({}),
            },
            Part::ToolCall {
                id: "call_ABC:1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into(),
                kind: ToolKind::Function,
            },
        ],
        stop: StopReason::ContentFilter,
        usage: Usage::default(),
        extensions: vec![],
    };
    let mut l = Losses::new();
    let out = encode_response(&resp, &mut l);
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(
        out["content"][1],
        json!({"type": "thinking", "thinking": "r", "signature": ""})
    );
    assert_eq!(out["content"][2]["id"], "call_ABC:1");
    assert_eq!(out["content"][2]["input"], json!({"a": 1}));
    assert_eq!(out["usage"]["output_tokens"], 0);
    assert_eq!(l.len(), 2);
}

#[test]
fn stream_encoder_renders_reasoning_and_drops_foreign_blocks() {
    let seal = ReasoningSeal::anthropic_signature("sig");
    let canon = vec![
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Reasoning {
                seal: None,
                id: None,
            },
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Reasoning("t".into()),
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Seal(seal),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::Opaque {
                dialect: Dialect::Responses,
                value: json!({}),
            },
        },
        StreamEvent::BlockStop { index: 1 },
        StreamEvent::BlockStart {
            index: 2,
            block: BlockKind::Reasoning {
                seal: Some(ReasoningSeal::anthropic_redacted("xyz")),
                id: None,
            },
        },
        StreamEvent::BlockStop { index: 2 },
        StreamEvent::MessageDelta {
            stop: StopReason::StopSequence {
                matched: Some("END".into()),
            },
            usage: Usage::default(),
        },
        StreamEvent::MessageStop,
    ];
    let (wire, losses) = encode_events(&canon, StreamOptions::default());
    validate(&wire).unwrap();
    assert_eq!(wire[0].event.as_deref(), Some("message_start"));
    assert_eq!(losses.len(), 1);
    let datas: Vec<Value> = wire.iter().map(data).collect();
    assert_eq!(
        datas[3]["delta"],
        json!({"type": "signature_delta", "signature": "sig"})
    );
    assert_eq!(
        datas[5]["content_block"],
        json!({"type": "redacted_thinking", "data": "xyz"})
    );
    assert_eq!(datas[5]["index"], 1);
    assert_eq!(datas[7]["delta"]["stop_sequence"], "END");
}

#[test]
fn validator_rejects_broken_streams() {
    let ms = Event::named(
        "message_start",
        r#"{"type":"message_start","message":{"id":"m"}}"#,
    );
    let bad_cases: Vec<Vec<Event>> = vec![
        vec![Event::data(
            r#"{"type":"message_start","message":{"id":"m"}}"#,
        )],
        vec![
            ms.clone(),
            Event::named(
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
            ),
        ],
        vec![
            ms.clone(),
            Event::named(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            Event::named(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{"}}"#,
            ),
        ],
        vec![
            ms.clone(),
            Event::named(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":""},"usage":{"output_tokens":1}}"#,
            ),
        ],
        vec![
            ms.clone(),
            Event::named("message_stop", r#"{"type":"message_stop"}"#),
        ],
        vec![
            ms.clone(),
            Event::named(
                "error",
                r#"{"type":"error","error":{"type":"api_error","message":"x"}}"#,
            ),
            Event::named("ping", r#"{"type":"ping"}"#),
        ],
        vec![ms.clone(), Event::data("[DONE]")],
        vec![
            ms.clone(),
            Event::named(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"f","input":{}}}"#,
            ),
            Event::named(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
            ),
            Event::named(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            Event::named(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":1}}"#,
            ),
        ],
        vec![ms],
    ];
    for (i, case) in bad_cases.iter().enumerate() {
        assert!(validate(case).is_err(), "case {i} passed");
    }
}

#[test]
fn well_formed_recordings_pass_the_validator() {
    for (name, bytes) in data_files("streams", "sse") {
        let events = dragoman_sse::decode_all(&bytes).unwrap();
        let complete = events.iter().any(|e| e.event.as_deref() == Some("message_delta"))
            && events.iter().any(|e| e.event.as_deref() == Some("message_stop"))
            && !name.contains("spliced")
            && !name.contains("duplicate")
            // An SDK fixture that omits content_block_stop on purpose.
            && !name.contains("incomplete_partial_json");
        if complete {
            validate(&events).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn custom_tool_calls_stream_as_json_objects() {
    let canon = vec![
        start(Usage::default()),
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::ToolCall {
                id: "call_1".into(),
                name: "shell".into(),
                kind: ToolKind::Custom,
            },
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Arguments("echo \"hi\"\n".into()),
        },
        StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Arguments("ls".into()),
        },
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::MessageDelta {
            stop: StopReason::ToolUse,
            usage: Usage::default(),
        },
        StreamEvent::MessageStop,
    ];
    let (wire, losses) = encode_events(&canon, StreamOptions::default());
    assert_eq!(losses.len(), 1);
    validate(&wire).unwrap();
    let r = collect(&decode_events(&wire)).unwrap();
    let Part::ToolCall { arguments, .. } = &r.content[0] else {
        panic!("{:?}", r.content)
    };
    let v: Value = serde_json::from_str(arguments).unwrap();
    assert_eq!(v, json!({"input": "echo \"hi\"\nls"}));
}

#[test]
fn conflict_errors_pass_through() {
    let e = decode_error(
        Some(409),
        br#"{"type":"error","error":{"type":"conflict_error","message":"busy"}}"#,
    );
    assert_eq!(encode_error(&e).0, 409);
    assert_eq!(encode_error(&e).1["error"]["type"], "conflict_error");
}

mod interleaving {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Spec {
        Text(Vec<String>),
        Call(Vec<String>),
        Think(Vec<String>, Option<String>),
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let frags = || proptest::collection::vec("[a-z \"{}]{0,6}", 0..4);
        prop_oneof![
            frags().prop_map(Spec::Text),
            proptest::collection::vec("[1-9][0-9]{0,2}", 0..4).prop_map(Spec::Call),
            (frags(), proptest::option::of("[A-Za-z0-9]{4,12}"))
                .prop_map(|(f, s)| Spec::Think(f, s)),
        ]
    }

    /// The canonical events of each block in order: start, deltas, stop.
    fn block_events(i: usize, s: &Spec) -> (Vec<StreamEvent>, Part) {
        let mut ev = Vec::new();
        let part = match s {
            Spec::Text(f) => {
                ev.push(StreamEvent::BlockStart {
                    index: i,
                    block: BlockKind::Text,
                });
                for x in f {
                    ev.push(StreamEvent::BlockDelta {
                        index: i,
                        delta: Delta::Text(x.clone()),
                    });
                }
                Part::text(f.concat())
            }
            Spec::Call(nums) => {
                ev.push(StreamEvent::BlockStart {
                    index: i,
                    block: BlockKind::ToolCall {
                        id: format!("toolu_{i}"),
                        name: "f".into(),
                        kind: ToolKind::Function,
                    },
                });
                let json = format!("[{}]", nums.join(","));
                let (a, b) = json.split_at(json.len() / 2);
                for x in [a, b] {
                    ev.push(StreamEvent::BlockDelta {
                        index: i,
                        delta: Delta::Arguments(x.to_owned()),
                    });
                }
                Part::ToolCall {
                    id: format!("toolu_{i}"),
                    name: "f".into(),
                    arguments: json,
                    kind: ToolKind::Function,
                }
            }
            Spec::Think(f, sig) => {
                ev.push(StreamEvent::BlockStart {
                    index: i,
                    block: BlockKind::Reasoning {
                        seal: None,
                        id: None,
                    },
                });
                for x in f {
                    ev.push(StreamEvent::BlockDelta {
                        index: i,
                        delta: Delta::Reasoning(x.clone()),
                    });
                }
                let seal = sig.clone().map(ReasoningSeal::anthropic_signature);
                if let Some(s) = &seal {
                    ev.push(StreamEvent::BlockDelta {
                        index: i,
                        delta: Delta::Seal(s.clone()),
                    });
                }
                Part::Reasoning {
                    text: f.concat(),
                    seal,
                }
            }
        };
        ev.push(StreamEvent::BlockStop { index: i });
        (ev, part)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_interleaving_encodes_to_valid_sequential_blocks(
            specs in proptest::collection::vec(spec(), 0..5),
            picks in proptest::collection::vec(0usize..100, 0..80),
        ) {
            let mut queues: Vec<std::collections::VecDeque<StreamEvent>> = Vec::new();
            let mut parts = Vec::new();
            for (i, s) in specs.iter().enumerate() {
                let (ev, p) = block_events(i, s);
                queues.push(ev.into());
                parts.push(p);
            }
            // Interleave: each block's own order is kept, but a block may only start after the
            // previous one started (canonical indexes are assigned in start order).
            let mut canon = vec![start(Usage::default())];
            let mut started = 0;
            let mut picks = picks.into_iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let live: Vec<usize> = (0..queues.len())
                    .filter(|&i| !queues[i].is_empty() && i <= started)
                    .collect();
                let i = live[picks.next().unwrap_or(0) % live.len()];
                if i == started { started += 1; }
                if let Some(e) = queues[i].pop_front() { canon.push(e); }
            }
            canon.push(StreamEvent::MessageDelta { stop: StopReason::EndTurn, usage: Usage::default() });
            canon.push(StreamEvent::MessageStop);
            let (wire, losses) = encode_events(&canon, StreamOptions::default());
            prop_assert!(losses.is_empty());
            prop_assert!(validate(&wire).is_ok(), "{:?}", validate(&wire));
            let r = collect(&decode_events(&wire)).unwrap();
            prop_assert_eq!(r.content, parts);
        }
    }
}
#[test]
fn anthropic_stop_reasons_are_kept_even_next_to_answered_tool_calls() {
    let files = data_files("responses", "json");
    let (_, body) = files
        .iter()
        .find(|(n, _)| n == "vercel-ai__anthropic-programmatic-tool-calling.1.json")
        .unwrap();
    let r = decode_response(body, &mut Losses::new()).unwrap();
    assert!(r.content.iter().any(|p| matches!(p, Part::ToolCall { .. })));
    assert_eq!(r.stop, StopReason::EndTurn);
    let out = encode_response(&r, &mut Losses::new());
    assert_eq!(out["stop_reason"], "end_turn");
    // The programmatic caller has no canonical place, yet Anthropic-to-Anthropic keeps it.
    let orig: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(out["content"], orig["content"]);
}

#[test]
fn synthesized_thinking_respects_its_constraints() {
    let base = Request {
        model: "claude-sonnet-4-5".into(),
        messages: vec![Message::text(Role::User, "hi")],
        max_tokens: Some(4096),
        temperature: Some(0.2),
        top_k: Some(5),
        reasoning: Some(ReasoningConfig {
            enabled: Some(true),
            effort: Some(dragoman_model::Effort::High),
            ..ReasoningConfig::default()
        }),
        ..Request::default()
    };
    let mut l = Losses::new();
    let out = encode_request(&base, &mut l);
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 3072})
    );
    assert!(out.get("temperature").is_none() && out.get("top_k").is_none());

    let forced = Request {
        tools: vec![Tool::Function {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: None,
            cache_control: None,
        }],
        tool_choice: Some(dragoman_model::ToolChoice::Required),
        ..base
    };
    let mut l = Losses::new();
    let out = encode_request(&forced, &mut l);
    assert!(out.get("thinking").is_none());
    assert_eq!(out["temperature"], 0.2);
    assert!(l.iter().any(|x| x.path == "reasoning"));
}

#[test]
fn foreign_tool_ids_are_made_safe_consistently() {
    let call = Part::ToolCall {
        id: "functions.get_weather:0".into(),
        name: "get_weather".into(),
        arguments: "{}".into(),
        kind: ToolKind::Function,
    };
    let result = Part::ToolResult {
        call_id: "functions.get_weather:0".into(),
        content: vec![Part::text("sunny")],
        is_error: false,
        kind: ToolKind::Function,
        cache_control: None,
    };
    let req = Request {
        model: "claude-sonnet-4-5".into(),
        max_tokens: Some(100),
        messages: vec![
            Message::text(Role::User, "weather?"),
            Message::new(Role::Assistant, vec![call]),
            Message::new(Role::Tool, vec![result]),
        ],
        ..Request::default()
    };
    let mut l = Losses::new();
    let out = encode_request(&req, &mut l);
    let id = out["messages"][1]["content"][0]["id"].as_str().unwrap();
    assert_eq!(out["messages"][2]["content"][0]["tool_use_id"], id);
    assert!(id.starts_with("functions_get_weather_0_"));
    assert!(
        id.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
    assert_eq!(l.len(), 2);
}

#[test]
fn claude_code_message_fields_survive() {
    let files = data_files("requests", "json");
    let (_, body) = files
        .iter()
        .find(|(n, _)| n == "client__claude-code-interactive-auto-mode.json")
        .unwrap();
    let orig: Value = serde_json::from_slice(body).unwrap();
    let mut l = Losses::new();
    let req = decode_request(body, &mut l).unwrap();
    let out = encode_request(&req, &mut l);
    assert!(l.is_empty());
    assert_eq!(
        out["messages"][1]["output_config"],
        json!({"effort": "medium"})
    );
    assert_eq!(out["safeguards"], orig["safeguards"]);
    assert_eq!(out["tools"], orig["tools"]);
    assert_eq!(out["system"], orig["system"]);
}

/// The hand-written hot stream events must read exactly as `json!` would have written them.
#[test]
fn hand_written_delta_events_match_serde_json() {
    let texts = [
        String::new(),
        "plain".to_owned(),
        "quote \" back \\ slash / é 😀 \u{7f}".to_owned(),
        (0u8..0x20).map(char::from).collect::<String>(),
    ];
    let mut enc = StreamEncoder::new(StreamOptions::default());
    let mut out = Vec::new();
    let mut losses = Losses::new();
    let blocks = [
        BlockKind::Text,
        BlockKind::Reasoning {
            seal: None,
            id: None,
        },
        BlockKind::ToolCall {
            id: "t".into(),
            name: "f".into(),
            kind: ToolKind::Function,
        },
    ];
    for (index, block) in blocks.into_iter().enumerate() {
        enc.push(
            &StreamEvent::BlockStart { index, block },
            &mut out,
            &mut losses,
        );
        for t in &texts {
            let delta = match index {
                0 => Delta::Text(t.clone()),
                1 => Delta::Reasoning(t.clone()),
                _ => Delta::Arguments(t.clone()),
            };
            enc.push(
                &StreamEvent::BlockDelta { index, delta },
                &mut out,
                &mut losses,
            );
        }
        enc.push(&StreamEvent::BlockStop { index }, &mut out, &mut losses);
    }
    enc.push(&StreamEvent::Ping, &mut out, &mut losses);
    let deltas: Vec<&Event> = out
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .collect();
    assert_eq!(deltas.len(), 3 * texts.len());
    for e in &out {
        let v: Value = serde_json::from_str(&e.data).unwrap();
        // Re-serializing gives serde_json's own bytes for the same value.
        assert_eq!(e.data, v.to_string());
        assert_eq!(e.event.as_deref(), v["type"].as_str());
    }
    for (i, t) in texts.iter().enumerate() {
        let v: Value = serde_json::from_str(&deltas[i].data).unwrap();
        assert_eq!(v["delta"]["text"], json!(t));
    }
}

/// Events the fast decoding path does not take exactly as the `Value` path does must fall back
/// to it, so errors and ignored events stay the same.
#[test]
fn unusual_delta_events_decode_as_before() {
    let start = [
        r#"{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    ];
    let run = |data: &str| {
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        for d in start {
            dec.push(&Event::named("x", d), &mut out).unwrap();
        }
        out.clear();
        let r = dec.push(&Event::named("content_block_delta", data), &mut out);
        (r.map_err(|e| e.to_string()), out)
    };
    let text = |t: &str| {
        vec![StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Text(t.into()),
        }]
    };
    let ok = run(
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb"}}"#,
    );
    assert_eq!(ok, (Ok(()), text("a\nb")));
    // Escaped keys and repeated keys (the last one wins, as in a `Value`).
    let esc = run(
        r#"{"\u0074ype":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","text":"y"}}"#,
    );
    assert_eq!(esc, (Ok(()), text("y")));
    // Missing payload, wrong kind, unknown block, non-integer index: errors as before.
    for bad in [
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":null}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"t"}}"#,
        r#"{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"t"}}"#,
        r#"{"type":"content_block_delta","index":0.0,"delta":{"type":"text_delta","text":"t"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":["text_delta","t"]}"#,
    ] {
        let (r, out) = run(bad);
        assert!(r.is_err(), "{bad}");
        assert!(out.is_empty());
    }
    // Unknown delta kinds on a text block carry nothing.
    assert_eq!(
        run(r#"{"type":"content_block_delta","index":0,"delta":{"type":"other","text":"t"}}"#),
        (Ok(()), vec![])
    );
}

/// `message_start` and `message_delta` are written as text, not built as trees: their bytes
/// must be what the tree would serialize to, escapes and optional usage details included.
#[test]
fn start_and_delta_events_are_written_as_the_tree_would_be() {
    let start_usage = Usage {
        input_uncached: Some(210),
        cache_read: Some(1024),
        cache_write: Some(7),
        cache_write_5m: Some(3),
        cache_write_1h: Some(4),
        ..Usage::default()
    };
    let end_usage = Usage {
        output: Some(40),
        reasoning: Some(8),
        web_search_requests: Some(2),
        ..Usage::default()
    };
    let events = [
        StreamEvent::MessageStart {
            id: "msg_\"1\"\n".into(),
            model: "claude-é".into(),
            usage: start_usage,
        },
        StreamEvent::MessageDelta {
            stop: StopReason::StopSequence {
                matched: Some("END\"\t".into()),
            },
            usage: end_usage,
        },
        StreamEvent::MessageStop,
    ];
    let (out, _) = encode_events(&events, StreamOptions::default());
    let start = json!({"type": "message_start", "message": {
        "id": "msg_\"1\"\n", "type": "message", "role": "assistant", "content": [],
        "model": "claude-é", "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 210, "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 1024,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
            "output_tokens": 1}}});
    let delta = json!({"type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END\"\t"},
        "usage": {"input_tokens": 210, "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 1024,
            "cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4},
            "output_tokens": 40, "output_tokens_details": {"thinking_tokens": 8},
            "server_tool_use": {"web_search_requests": 2}}});
    assert_eq!(out[0].data, start.to_string());
    let d = out
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"));
    assert_eq!(d.unwrap().data, delta.to_string());
    // A refusal's details are carried as given.
    let (out, _) = encode_events(
        &[
            StreamEvent::MessageStart {
                id: "m".into(),
                model: "x".into(),
                usage: Usage::default(),
            },
            StreamEvent::MessageDelta {
                stop: StopReason::Refusal {
                    details: Some(json!({"category": "cyber", "explanation": null})),
                },
                usage: Usage::default(),
            },
        ],
        StreamOptions::default(),
    );
    let d = out
        .iter()
        .find(|e| e.event.as_deref() == Some("message_delta"));
    let want = json!({"type": "message_delta",
        "delta": {"stop_reason": "refusal", "stop_sequence": null,
            "stop_details": {"category": "cyber", "explanation": null}},
        "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0, "output_tokens": 0}});
    assert_eq!(d.unwrap().data, want.to_string());
}
