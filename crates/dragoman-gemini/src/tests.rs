//! Unit tests of the Gemini codec's hand-written fast paths and its pairing rules; the
//! recordings are covered by the translate crate's goldens and conformance matrix.

#![allow(clippy::unwrap_used)]

use dragoman_model::{
    BlockKind, Delta, Losses, Part, Request, StopReason, StreamEvent, StreamOptions, Usage,
};
use serde_json::{Value, json};

use crate::{StreamDecoder, StreamEncoder, decode_request, encode_request};

fn encode(events: &[StreamEvent]) -> Vec<dragoman_sse::Event> {
    let mut enc = StreamEncoder::new(StreamOptions::default());
    let mut out = Vec::new();
    for e in events {
        enc.push(e, &mut out, &mut Losses::new());
    }
    out
}

#[test]
fn text_chunks_written_as_text_equal_the_tree_form() {
    let tricky = "quote \" backslash \\ newline \n tab \t ctrl \u{1} é 😀";
    let events = [
        StreamEvent::MessageStart {
            id: "r\"1".into(),
            model: "gemini-x".into(),
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
        StreamEvent::BlockStop { index: 0 },
        StreamEvent::BlockStart {
            index: 1,
            block: BlockKind::Text,
        },
        StreamEvent::BlockDelta {
            index: 1,
            delta: Delta::Text(tricky.into()),
        },
    ];
    let out = encode(&events);
    assert_eq!(out.len(), 2);
    for (ev, thought) in out.iter().zip([true, false]) {
        let mut part = json!({ "text": tricky });
        if thought {
            part["thought"] = json!(true);
        }
        let tree = json!({
            "candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
            "modelVersion": "gemini-x",
            "responseId": "r\"1",
        });
        assert_eq!(ev.data, tree.to_string());
    }
}

/// The borrowed reading of common chunks and the tree reading give the same events: the same
/// chunk, once plain and once with a field only the tree path reads (`createTime`).
#[test]
fn the_fast_and_the_tree_stream_readings_agree() {
    let chunks = [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "thinking", "thought": true}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "cachedContentTokenCount": 4}, "modelVersion": "m", "responseId": "r"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}, {"text": "lo"}]}, "index": 0}],
               "modelVersion": "m", "responseId": "r"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "MAX_TOKENS", "index": 0}],
               "usageMetadata": {"promptTokenCount": 9, "cachedContentTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
               "modelVersion": "m", "responseId": "r"}),
    ];
    let run = |extra: bool| {
        let mut dec = StreamDecoder::new();
        let mut out = Vec::new();
        for c in &chunks {
            let mut c = c.clone();
            if extra {
                c["candidates"][0]["safetyRatings"] = json!([]);
            }
            dec.push(&dragoman_sse::Event::data(c.to_string()), &mut out)
                .unwrap();
        }
        out
    };
    let (fast, tree) = (run(false), run(true));
    assert_eq!(fast, tree);
    assert!(matches!(fast.last(), Some(StreamEvent::MessageStop)));
    let delta = fast
        .iter()
        .find_map(|e| match e {
            StreamEvent::MessageDelta { stop, usage } => Some((stop.clone(), *usage)),
            _ => None,
        })
        .unwrap();
    assert_eq!(delta.0, StopReason::MaxTokens);
    assert_eq!(
        (
            delta.1.input_uncached,
            delta.1.cache_read,
            delta.1.output,
            delta.1.reasoning
        ),
        (Some(5), Some(4), Some(5), Some(2))
    );
}

/// Function responses without ids answer the oldest open call of their name, as Gemini pairs
/// them; ids of other providers never travel to Gemini, Gemini's own do.
#[test]
fn calls_and_results_pair_by_order_and_name() {
    let body = json!({"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {"a": 1}}},
            {"functionCall": {"name": "g", "args": {}}},
            {"functionCall": {"name": "f", "args": {"a": 2}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "f", "response": {"output": "one"}}},
            {"functionResponse": {"name": "g", "response": {"output": "gee"}}},
            {"functionResponse": {"name": "f", "response": {"error": "two"}}}]}
    ]});
    let req: Request = decode_request(body.to_string().as_bytes(), &mut Losses::new()).unwrap();
    let calls: Vec<String> = req.messages[1]
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let results: Vec<(String, bool)> = req.messages[2]
        .content
        .iter()
        .filter_map(|p| match p {
            Part::ToolResult {
                call_id, is_error, ..
            } => Some((call_id.clone(), *is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        vec![
            (calls[0].clone(), false),
            (calls[1].clone(), false),
            (calls[2].clone(), true)
        ]
    );
    let back: Value = encode_request(&req, &mut Losses::new());
    let first = &back["contents"][1]["parts"][0]["functionCall"];
    assert!(first.get("id").is_none(), "made-up ids stay here: {first}");
    assert_eq!(
        back["contents"][2]["parts"][2]["functionResponse"]["response"],
        json!({"error": "two"})
    );
}

/// A Gemini signature comes back on the part it arrived with, byte for byte, after a trip
/// through the canonical model.
#[test]
fn thought_signatures_return_on_their_part() {
    let body = json!({"contents": [
        {"role": "user", "parts": [{"text": "go"}]},
        {"role": "model", "parts": [
            {"text": "summary", "thought": true},
            {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "c2lnLTE="},
            {"text": "after"},
            {"text": "", "thoughtSignature": "c2lnLTI="}]}
    ]});
    let req = decode_request(body.to_string().as_bytes(), &mut Losses::new()).unwrap();
    let back = encode_request(&req, &mut Losses::new());
    let parts = &back["contents"][1]["parts"];
    assert_eq!(parts[0], json!({"text": "summary", "thought": true}));
    assert_eq!(parts[1]["thoughtSignature"], "c2lnLTE=");
    assert!(parts[1].get("functionCall").is_some());
    assert_eq!(parts[2], json!({"text": "after"}));
    assert_eq!(
        parts[3],
        json!({"text": "", "thoughtSignature": "c2lnLTI="})
    );
}
