//! Named cross-dialect cases from the issue tracker and the traps list, written by hand so each
//! one states the behaviour it protects.

use dragoman_model::{Dialect, Losses, StreamOptions, collect};
use serde_json::{Value, json};

use crate::*;

fn sse_named(events: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        let t = e["type"].as_str().unwrap().to_owned();
        dragoman_sse::encode(&dragoman_sse::Event::named(t, e.to_string()), &mut out);
    }
    out
}

fn sse_data(events: &[Value], done: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        dragoman_sse::encode(&dragoman_sse::Event::data(e.to_string()), &mut out);
    }
    if done {
        dragoman_sse::encode(&dragoman_sse::Event::data("[DONE]"), &mut out);
    }
    out
}

fn run(
    from: Dialect,
    to: Dialect,
    bytes: &[u8],
    estimate: Option<u64>,
) -> (Vec<dragoman_sse::Event>, Losses) {
    let mut losses = Losses::new();
    let opts = StreamOptions {
        input_estimate: estimate,
        include_usage: true,
    };
    let out = translate_stream(from, to, bytes, opts, &mut losses).unwrap();
    let events = decode_events(to, &out).unwrap();
    validate(to, &events)
        .unwrap_or_else(|e| panic!("{to} grammar: {e}\n{}", String::from_utf8_lossy(&out)));
    (events, losses)
}

fn json_of(e: &dragoman_sse::Event) -> Value {
    serde_json::from_str(&e.data).unwrap_or(Value::Null)
}

fn find(events: &[dragoman_sse::Event], ty: &str) -> Vec<Value> {
    events
        .iter()
        .map(json_of)
        .filter(|j| j["type"] == ty)
        .collect()
}

fn responses_stream(usage: Value, reasoning: Option<(&str, &str)>) -> Vec<u8> {
    let mut ev = vec![
        json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5","output":[],"usage":null}}),
        json!({"type":"response.in_progress","sequence_number":1,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-5","output":[],"usage":null}}),
    ];
    let mut output = Vec::new();
    let mut idx = 0;
    if let Some((id, enc)) = reasoning {
        let done = json!({"type":"reasoning","id":id,"summary":[{"type":"summary_text","text":"Thinking hard."}],"encrypted_content":enc});
        ev.push(json!({"type":"response.output_item.added","sequence_number":2,"output_index":0,"item":{"type":"reasoning","id":id,"summary":[]}}));
        ev.push(json!({"type":"response.reasoning_summary_part.added","sequence_number":3,"item_id":id,"output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}));
        ev.push(json!({"type":"response.reasoning_summary_text.delta","sequence_number":4,"item_id":id,"output_index":0,"summary_index":0,"delta":"Thinking hard."}));
        ev.push(json!({"type":"response.reasoning_summary_text.done","sequence_number":5,"item_id":id,"output_index":0,"summary_index":0,"text":"Thinking hard."}));
        ev.push(json!({"type":"response.reasoning_summary_part.done","sequence_number":6,"item_id":id,"output_index":0,"summary_index":0,"part":{"type":"summary_text","text":"Thinking hard."}}));
        ev.push(json!({"type":"response.output_item.done","sequence_number":7,"output_index":0,"item":done}));
        output.push(done);
        idx = 1;
    }
    let msg = json!({"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Hi there","annotations":[]}]});
    ev.push(json!({"type":"response.output_item.added","sequence_number":8,"output_index":idx,"item":{"type":"message","id":"msg_1","role":"assistant","status":"in_progress","content":[]}}));
    ev.push(json!({"type":"response.content_part.added","sequence_number":9,"item_id":"msg_1","output_index":idx,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}));
    ev.push(json!({"type":"response.output_text.delta","sequence_number":10,"item_id":"msg_1","output_index":idx,"content_index":0,"delta":"Hi there"}));
    ev.push(json!({"type":"response.output_text.done","sequence_number":11,"item_id":"msg_1","output_index":idx,"content_index":0,"text":"Hi there"}));
    ev.push(json!({"type":"response.content_part.done","sequence_number":12,"item_id":"msg_1","output_index":idx,"content_index":0,"part":{"type":"output_text","text":"Hi there","annotations":[]}}));
    ev.push(json!({"type":"response.output_item.done","sequence_number":13,"output_index":idx,"item":msg}));
    output.push(msg);
    ev.push(json!({"type":"response.completed","sequence_number":14,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-5","output":output,"usage":usage}}));
    // Renumber so the input itself is a valid Responses stream.
    for (i, e) in ev.iter_mut().enumerate() {
        e["sequence_number"] = json!(i);
    }
    sse_named(&ev)
}

fn final_anthropic_usage(events: &[dragoman_sse::Event]) -> Value {
    let deltas = find(events, "message_delta");
    assert_eq!(deltas.len(), 1);
    deltas[0]["usage"].clone()
}

#[test]
fn responses_cached_tokens_reach_anthropic_final_usage() {
    let usage = json!({"input_tokens":1234,"input_tokens_details":{"cached_tokens":1024},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":1241});
    let (events, _) = run(
        Dialect::Responses,
        Dialect::Anthropic,
        &responses_stream(usage, None),
        Some(1200),
    );
    let start = &find(&events, "message_start")[0]["message"]["usage"];
    assert_eq!(
        start["input_tokens"], 1200,
        "message_start carries the local estimate, never zero"
    );
    let u = final_anthropic_usage(&events);
    assert_eq!(u["input_tokens"], 210);
    assert_eq!(u["cache_read_input_tokens"], 1024);
    assert_eq!(u["output_tokens"], 7);
}

#[test]
fn chat_cached_tokens_reach_anthropic_final_usage() {
    let chunks = vec![
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}),
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}),
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":1234,"completion_tokens":5,"total_tokens":1239,"prompt_tokens_details":{"cached_tokens":1024}}}),
    ];
    let (events, _) = run(
        Dialect::Chat,
        Dialect::Anthropic,
        &sse_data(&chunks, true),
        Some(900),
    );
    let u = final_anthropic_usage(&events);
    assert_eq!(
        (
            u["input_tokens"].clone(),
            u["cache_read_input_tokens"].clone()
        ),
        (json!(210), json!(1024))
    );
    assert_eq!(
        find(&events, "message_start")[0]["message"]["usage"]["input_tokens"],
        900
    );
}

fn anthropic_stream(cut: bool) -> Vec<u8> {
    let mut ev = vec![
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_read_input_tokens":4004,"cache_creation_input_tokens":10,"output_tokens":1}}}),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me see."}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkDsig=="}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}),
    ];
    if !cut {
        ev.push(json!({"type":"content_block_stop","index":1}));
        ev.push(json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":42,"output_tokens_details":{"thinking_tokens":30}}}));
        ev.push(json!({"type":"message_stop"}));
    }
    sse_named(&ev)
}

#[test]
fn anthropic_cache_buckets_become_inclusive_openai_totals() {
    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Responses,
        &anthropic_stream(false),
        None,
    );
    let done = &find(&events, "response.completed")[0]["response"]["usage"];
    assert_eq!(done["input_tokens"], 4017);
    assert_eq!(done["input_tokens_details"]["cached_tokens"], 4004);
    assert_eq!(done["output_tokens"], 42);

    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Chat,
        &anthropic_stream(false),
        None,
    );
    let usage_chunk = events
        .iter()
        .map(json_of)
        .find(|j| j["usage"].is_object())
        .unwrap();
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 4017);
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"],
        4004
    );
    assert_eq!(usage_chunk["choices"], json!([]));
}

#[test]
fn reasoning_tokens_stay_a_subset_of_output() {
    let usage = json!({"input_tokens":50,"input_tokens_details":{"cached_tokens":0},"output_tokens":100,"output_tokens_details":{"reasoning_tokens":60},"total_tokens":150});
    let bytes = responses_stream(usage, Some(("rs_abc", "gAAAAENCRYPTED")));
    let (events, _) = run(Dialect::Responses, Dialect::Chat, &bytes, None);
    let u = events
        .iter()
        .map(json_of)
        .find(|j| j["usage"].is_object())
        .unwrap()["usage"]
        .clone();
    assert_eq!(
        (
            u["completion_tokens"].clone(),
            u["completion_tokens_details"]["reasoning_tokens"].clone()
        ),
        (json!(100), json!(60))
    );
    assert_eq!(u["total_tokens"], 150);
    let (events, _) = run(Dialect::Responses, Dialect::Anthropic, &bytes, None);
    assert_eq!(
        final_anthropic_usage(&events)["output_tokens"],
        100,
        "thinking is inside output, never added again"
    );
}

#[test]
fn interleaved_parallel_tool_calls_become_sequential_blocks() {
    let c = |delta: Value| json!({"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":delta,"finish_reason":null}]});
    let chunks = vec![
        c(json!({"role":"assistant","content":null})),
        c(
            json!({"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]}),
        ),
        c(
            json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":""}}]}),
        ),
        c(json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})),
        c(json!({"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"UTC\"}"}}]})),
        c(json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})),
        json!({"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
        json!({"id":"chatcmpl-2","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":10,"total_tokens":30}}),
    ];
    let bytes = sse_data(&chunks, true);
    for target in [Dialect::Anthropic, Dialect::Responses] {
        let (events, _) = run(Dialect::Chat, target, &bytes, None);
        let out = dragoman_sse::encode_all(&events);
        let resp = collect(&decode_stream(target, &out).unwrap()).unwrap();
        let calls: Vec<(String, String, String)> = resp
            .content
            .iter()
            .filter_map(|p| match p {
                dragoman_model::Part::ToolCall {
                    id,
                    name,
                    arguments,
                    ..
                } => Some((id.clone(), name.clone(), arguments.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (
                    "call_a".into(),
                    "weather".into(),
                    "{\"city\":\"Paris\"}".into()
                ),
                ("call_b".into(), "time".into(), "{\"tz\":\"UTC\"}".into())
            ],
            "through {target}"
        );
        assert_eq!(resp.stop, dragoman_model::StopReason::ToolUse);
    }
}

#[test]
fn a_cut_stream_becomes_an_error_never_a_success() {
    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Chat,
        &anthropic_stream(true),
        None,
    );
    assert!(
        events.iter().all(|e| e.data != "[DONE]"),
        "no [DONE] after a failure"
    );
    assert!(json_of(events.last().unwrap())["error"].is_object());

    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Responses,
        &anthropic_stream(true),
        None,
    );
    assert!(find(&events, "response.completed").is_empty());
    assert_eq!(json_of(events.last().unwrap())["type"], "response.failed");

    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Anthropic,
        &anthropic_stream(true),
        None,
    );
    assert!(find(&events, "message_stop").is_empty());
    assert_eq!(events.last().unwrap().event.as_deref(), Some("error"));
    // The open text block was closed before the error.
    assert_eq!(find(&events, "content_block_stop").len(), 2);
}

#[test]
fn malformed_upstream_event_ends_the_client_stream_with_an_error() {
    let mut bytes = anthropic_stream(true);
    bytes.extend_from_slice(b"event: content_block_delta\ndata: {not json\n\n");
    let mut out = Vec::new();
    let mut t = StreamTranslator::new(
        Dialect::Anthropic,
        Dialect::Responses,
        StreamOptions::default(),
    );
    let mut losses = Losses::new();
    let err = t.push(&bytes, &mut out, &mut losses).unwrap_err();
    assert!(err.to_string().contains("event"), "{err}");
    t.finish(&mut out, &mut losses).unwrap();
    let events = dragoman_sse::decode_all(&out).unwrap();
    validate(Dialect::Responses, &events).unwrap();
    assert_eq!(json_of(events.last().unwrap())["type"], "response.failed");
}

#[test]
fn openai_reasoning_survives_an_anthropic_client_round_trip() {
    let usage = json!({"input_tokens":5,"output_tokens":9,"total_tokens":14});
    let bytes = responses_stream(usage, Some(("rs_0123", "gAAAAB-opaque+/=")));
    let (events, _) = run(Dialect::Responses, Dialect::Anthropic, &bytes, None);
    let resp =
        collect(&decode_stream(Dialect::Anthropic, &dragoman_sse::encode_all(&events)).unwrap())
            .unwrap();
    // The client replays the assistant turn, as Claude Code does on its next request.
    let mut losses = Losses::new();
    let content = encode_response(Dialect::Anthropic, &resp, &mut losses)["content"].clone();
    let replay = json!({"model":"gpt-5","max_tokens":100,"messages":[
        {"role":"user","content":"hi"},
        {"role":"assistant","content":content},
        {"role":"user","content":"again"}]});
    let upstream = translate_request(
        Dialect::Anthropic,
        Dialect::Responses,
        replay.to_string().as_bytes(),
        &mut losses,
    )
    .unwrap();
    let reasoning: Vec<&Value> = upstream["input"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "reasoning")
        .collect();
    assert_eq!(reasoning.len(), 1);
    assert_eq!(reasoning[0]["id"], "rs_0123");
    assert_eq!(reasoning[0]["encrypted_content"], "gAAAAB-opaque+/=");
}

#[test]
fn anthropic_thinking_survives_a_responses_client_round_trip_and_is_dropped_for_chat() {
    let (events, _) = run(
        Dialect::Anthropic,
        Dialect::Responses,
        &anthropic_stream(false),
        None,
    );
    let done = &find(&events, "response.completed")[0]["response"];
    let replay = json!({"model":"claude-sonnet-4-5","input":[
        {"role":"user","content":"hi"}]});
    let mut input = replay["input"].as_array().unwrap().clone();
    input.extend(done["output"].as_array().unwrap().iter().cloned());
    input.push(json!({"role":"user","content":"again"}));
    let body = json!({"model":"claude-sonnet-4-5","input":input,"store":false});
    let mut losses = Losses::new();
    let upstream = translate_request(
        Dialect::Responses,
        Dialect::Anthropic,
        body.to_string().as_bytes(),
        &mut losses,
    )
    .unwrap();
    let thinking = upstream["messages"][1]["content"][0].clone();
    assert_eq!(thinking["type"], "thinking");
    assert_eq!(thinking["signature"], "EqQBCkYIBxgCKkDsig==");
    assert_eq!(thinking["thinking"], "Let me see.");

    let mut losses = Losses::new();
    let chat = translate_request(
        Dialect::Responses,
        Dialect::Chat,
        body.to_string().as_bytes(),
        &mut losses,
    )
    .unwrap();
    assert!(
        !chat.to_string().contains("EqQBCkYIBxgCKkDsig"),
        "foreign reasoning state is never sent"
    );
    assert!(
        losses
            .iter()
            .any(|l| l.note.contains("reasoning") || l.path.contains("reasoning")),
        "{losses:?}"
    );
}

#[test]
fn garbled_tool_arguments_end_the_stream_with_an_error_not_a_tool_turn() {
    let c = |delta: Value, finish: Value| json!({"id":"chatcmpl-3","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
    let chunks = vec![
        c(json!({"role":"assistant","content":null}), Value::Null),
        c(
            json!({"tool_calls":[{"index":0,"id":"call_x","type":"function","function":{"name":"rm","arguments":"{\"path\": \"/tm"}}]}),
            Value::Null,
        ),
        c(json!({}), json!("tool_calls")),
    ];
    for target in Dialect::ALL {
        let (events, _) = run(Dialect::Chat, target, &sse_data(&chunks, true), None);
        let back = decode_stream(target, &encode_events(target, &events)).unwrap();
        assert!(
            matches!(back.last(), Some(dragoman_model::StreamEvent::Error { .. })),
            "{target}: {back:?}"
        );
    }
    // Cut by the token limit, partial arguments are what every dialect reports: no error.
    let mut cut = chunks.clone();
    cut[2] = c(json!({}), json!("length"));
    let (events, _) = run(
        Dialect::Chat,
        Dialect::Anthropic,
        &sse_data(&cut, true),
        None,
    );
    assert_eq!(
        find(&events, "message_delta")[0]["delta"]["stop_reason"],
        "max_tokens"
    );
}

/// An Anthropic refusal must read as a refusal in every client dialect: Chat's
/// `content_filter` with the explanation as `message.refusal`, Responses' `incomplete` with
/// `content_filter` (what the AI SDK and the OpenAI SDKs treat as filtered), whole and
/// streamed.
#[test]
fn anthropic_refusals_stay_refusals_in_the_openai_dialects() {
    let whole =
        std::fs::read("../../test_data/anthropic/responses/vercel-ai__anthropic-refusal.json")
            .unwrap();
    let stream =
        std::fs::read("../../test_data/anthropic/streams/vercel-ai__anthropic-refusal.sse")
            .unwrap();
    let r = translate_response(
        Dialect::Anthropic,
        Dialect::Chat,
        &whole,
        &mut Losses::new(),
    )
    .unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "content_filter", "{r}");
    let explanation =
        serde_json::from_slice::<Value>(&whole).unwrap()["stop_details"]["explanation"].clone();
    if explanation.is_string() {
        assert_eq!(r["choices"][0]["message"]["refusal"], explanation, "{r}");
    }
    let r = translate_response(
        Dialect::Anthropic,
        Dialect::Responses,
        &whole,
        &mut Losses::new(),
    )
    .unwrap();
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "content_filter", "{r}");

    let out = translate_stream(
        Dialect::Anthropic,
        Dialect::Chat,
        &stream,
        StreamOptions::default(),
        &mut Losses::new(),
    )
    .unwrap();
    let events = dragoman_sse::decode_all(&out).unwrap();
    assert!(
        events
            .iter()
            .any(|e| json_of(e)["choices"][0]["finish_reason"] == "content_filter"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // This recording's `message_delta` explains the refusal: Chat clients read it as `refusal`.
    assert!(
        events
            .iter()
            .any(|e| json_of(e)["choices"][0]["delta"]["refusal"]
                .as_str()
                .is_some_and(|r| r.contains("Usage Policy"))),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let out = translate_stream(
        Dialect::Anthropic,
        Dialect::Responses,
        &stream,
        StreamOptions::default(),
        &mut Losses::new(),
    )
    .unwrap();
    let events = dragoman_sse::decode_all(&out).unwrap();
    let end = find(&events, "response.incomplete");
    assert_eq!(end.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(
        end[0]["response"]["incomplete_details"]["reason"],
        "content_filter"
    );
}

/// A relayed Responses stream that breaks off gets its error ending numbered after the last
/// event forwarded, even when the upstream sent events the tap's decoder has no use for.
#[test]
fn passthrough_error_ending_continues_the_upstreams_numbering() {
    let events = [
        json!({"type": "response.created", "sequence_number": 0, "response": {"id": "resp_1", "model": "m", "status": "in_progress", "output": []}}),
        json!({"type": "response.in_progress", "sequence_number": 1, "response": {"id": "resp_1", "model": "m", "status": "in_progress", "output": []}}),
        json!({"type": "response.vendor_progress", "sequence_number": 2}),
        json!({"type": "response.vendor_progress", "sequence_number": 3}),
    ];
    let bytes = sse_named(&events);
    let mut tap = PassthroughTap::new(Dialect::Responses);
    let mut out = Vec::new();
    tap.push(&bytes, &mut out).unwrap();
    assert_eq!(out, bytes, "whole events pass untouched");
    tap.push(
        b"event: response.output_text.delta\ndata: {\"type\":",
        &mut out,
    )
    .unwrap();
    assert_eq!(out, bytes, "half an event is held, not forwarded");
    tap.finish(&mut out);
    let all = dragoman_sse::decode_all(&out).unwrap();
    let seqs: Vec<u64> = all
        .iter()
        .map(|e| json_of(e)["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        [0, 1, 2, 3, 4, 5],
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(all[4].event.as_deref(), Some("error"));
    assert_eq!(all[5].event.as_deref(), Some("response.failed"));
    assert!(tap.closed());
}

/// A Gemini stream cut before its `finishReason` (Gemini has no terminal event, so its
/// decoder cannot tell) still ends every client's stream with that client's error ending,
/// Gemini's own included (found by the damaged-stream fuzz).
#[test]
fn a_gemini_stream_cut_short_ends_in_an_error_for_every_client() {
    let chunk = json!({"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_user_country", "args": {}, "id": "c1"}, "thoughtSignature": "c2ln"}
    ]}, "index": 0}], "responseId": "r1"});
    let bytes = sse_data(&[chunk], false);
    for to in Dialect::ALL {
        let mut losses = Losses::new();
        let out = translate_stream(
            Dialect::Gemini,
            to,
            &bytes,
            StreamOptions::default(),
            &mut losses,
        )
        .unwrap();
        let events = decode_events(to, &out).unwrap();
        validate(to, &events).unwrap_or_else(|e| panic!("{to}: {e}"));
        let back = decode_stream(to, &out).unwrap();
        assert!(
            matches!(back.last(), Some(dragoman_model::StreamEvent::Error { .. })),
            "{to}: {back:?}"
        );
    }
}
