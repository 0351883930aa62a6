//! Unit tests of the framing against the recorded Bedrock streams and hand-built messages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn recorded() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test_data/bedrock/streams"
    );
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eventstream"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 8, "recorded streams missing: {}", v.len());
    v
}

#[test]
fn worked_example_of_the_reference() {
    let (_, bytes) = recorded()
        .into_iter()
        .find(|(n, _)| n.ends_with("pydantic-ai__test_bedrock_model_stream.eventstream"))
        .unwrap();
    assert_eq!(
        &bytes[..12],
        &[0, 0, 0, 0x8f, 0, 0, 0, 0x52, 0xd3, 0xf1, 0xc8, 0xf2]
    );
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut ends = Vec::new();
    d.push_framed(&bytes[..143], &mut out, &mut ends).unwrap();
    assert_eq!(ends, vec![143]);
    assert_eq!(
        out,
        vec![Event::named(
            "messageStart",
            r#"{"p":"abcdefghijklmnopqr","role":"assistant"}"#
        )]
    );
    assert!(!d.has_pending());
    // 33 frames: messageStart, 29 deltas, contentBlockStop, messageStop, metadata.
    let all = decode_all(&bytes).unwrap();
    assert_eq!(all.len(), 33);
    assert_eq!(all[32].event.as_deref(), Some("metadata"));
    assert_eq!(all[31].event.as_deref(), Some("messageStop"));
}

#[test]
fn every_recorded_stream_decodes_and_reencodes_byte_for_byte() {
    for (name, bytes) in recorded() {
        let events = decode_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!events.is_empty(), "{name}");
        for e in &events {
            serde_json::from_str::<serde_json::Value>(&e.data)
                .unwrap_or_else(|err| panic!("{name}: payload not JSON: {err}"));
        }
        // Headers are written in Bedrock's order, so the encoder reproduces the recording.
        assert_eq!(encode_all(&events), bytes, "{name}");
    }
}

#[test]
fn recorded_exception_becomes_a_named_event() {
    let (_, bytes) = recorded()
        .into_iter()
        .find(|(n, _)| n.ends_with("model-stream-error-exception.eventstream"))
        .unwrap();
    let events = decode_all(&bytes).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name(), "modelStreamErrorException");
    let v: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(v["originalStatusCode"], 500);
}

#[test]
fn byte_at_a_time_gives_the_same_events_and_ends() {
    for (name, bytes) in recorded() {
        let whole = decode_all(&bytes).unwrap();
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for b in &bytes {
            d.push_framed(std::slice::from_ref(b), &mut out, &mut ends)
                .unwrap();
        }
        d.finish().unwrap();
        assert_eq!(out, whole, "{name}");
        assert_eq!(ends.last().copied(), Some(bytes.len() as u64), "{name}");
        assert_eq!(d.offset(), bytes.len() as u64);
    }
}

fn raw_message(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let hs = headers
        .iter()
        .map(|(n, v)| Header::new(n.to_string(), string(v)))
        .collect();
    let m = Message::new_from_parts(hs, Bytes::copy_from_slice(payload));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).unwrap();
    out
}

#[test]
fn error_messages_become_error_events() {
    let b = raw_message(
        &[
            (":message-type", "error"),
            (":error-code", "InternalFailure"),
            (":error-message", "boom \"x\""),
        ],
        b"",
    );
    let ev = decode_all(&b).unwrap();
    assert_eq!(ev[0].name(), "error");
    let v: serde_json::Value = serde_json::from_str(&ev[0].data).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"code": "InternalFailure", "message": "boom \"x\""})
    );
}

#[test]
fn header_faults_are_errors_with_offsets() {
    let ok = raw_message(&[(":message-type", "event"), (":event-type", "a")], b"{}");
    let n = ok.len() as u64;
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (
            raw_message(&[(":message-type", "event")], b"{}"),
            FrameError::MissingHeader {
                offset: n,
                name: ":event-type".into(),
            },
        ),
        (
            raw_message(&[(":event-type", "a")], b"{}"),
            FrameError::MissingHeader {
                offset: n,
                name: ":message-type".into(),
            },
        ),
        (
            raw_message(
                &[
                    (":message-type", "event"),
                    (":event-type", "a"),
                    (":event-type", "b"),
                ],
                b"{}",
            ),
            FrameError::DuplicateHeader {
                offset: n,
                name: ":event-type".into(),
            },
        ),
        (
            raw_message(&[(":message-type", "weird")], b"{}"),
            FrameError::UnknownMessageType {
                offset: n,
                value: "weird".into(),
            },
        ),
        (
            raw_message(
                &[(":message-type", "event"), (":event-type", "a")],
                b"{\xff}",
            ),
            FrameError::NotUtf8 {
                offset: n,
                valid_up_to: 1,
            },
        ),
    ];
    for (bad, want) in cases {
        let mut s = ok.clone();
        s.extend_from_slice(&bad);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        assert_eq!(d.push(&s, &mut out), Err(want.clone()));
        // The good message before the bad one is still delivered, and the failure sticks.
        assert_eq!(out.len(), 1);
        assert_eq!(d.push(&ok, &mut out), Err(want.clone()));
        assert!(!want.to_string().is_empty());
        assert!(want.to_string().contains(&n.to_string()));
    }
}

#[test]
fn json_body_is_rejected_at_once() {
    let body = br#"{"message":"The provided model identifier is invalid."}"#;
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let e = d.push(body, &mut out).unwrap_err();
    assert!(matches!(e, FrameError::PreludeCrc { offset: 0, .. }), "{e}");
    assert!(out.is_empty());
    // Too short to hold a prelude: only the end of input can tell, and it does.
    let mut d = Decoder::new();
    d.push(b"{}", &mut out).unwrap();
    assert!(matches!(
        d.finish(),
        Err(FrameError::Truncated {
            offset: 2,
            buffered: 2
        })
    ));
}

#[test]
fn limits_are_checked_from_the_prelude() {
    let mut p = Vec::new();
    p.extend_from_slice(&(MAX_PAYLOAD_BYTES + 1000).to_be_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&p);
    p.extend_from_slice(&crc.to_be_bytes());
    let e = decode_all(&p).unwrap_err();
    assert!(
        matches!(
            e,
            FrameError::TooLarge {
                what: "payload",
                ..
            }
        ),
        "{e}"
    );
    let mut q = Vec::new();
    q.extend_from_slice(&10u32.to_be_bytes());
    q.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&q);
    q.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        decode_all(&q),
        Err(FrameError::BadLength {
            total_length: 10,
            ..
        })
    ));
}

#[test]
fn encode_picks_the_message_type_by_name() {
    let mut b = Vec::new();
    encode(
        &Event::named("throttlingException", r#"{"message":"slow"}"#),
        &mut b,
    );
    encode(
        &Event::named("messageStop", r#"{"stopReason":"end_turn"}"#),
        &mut b,
    );
    let m = aws_smithy_eventstream::frame::read_message_from(&b[..]).unwrap();
    assert_eq!(header(&m, ":message-type", 0).unwrap(), Some("exception"));
    assert_eq!(
        header(&m, ":exception-type", 0).unwrap(),
        Some("throttlingException")
    );
    assert_eq!(
        header(&m, ":content-type", 0).unwrap(),
        Some("application/json")
    );
    let ev = decode_all(&b).unwrap();
    assert_eq!(ev[0].name(), "throttlingException");
    assert_eq!(ev[1].name(), "messageStop");
    assert_eq!(ev[1].data, r#"{"stopReason":"end_turn"}"#);
}

#[test]
fn chunk_round_trip_and_unwrapping() {
    let inner =
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hé"}}"#;
    let mut b = Vec::new();
    encode_chunk(&Event::named("content_block_delta", inner), &mut b);
    // Bedrock adds padding; the decoder must not care.
    let padded = format!(
        r#"{{"bytes":"{}","p":"abcdef"}}"#,
        base64::engine::general_purpose::STANDARD.encode(r#"{"type":"message_stop"}"#)
    );
    encode(&Event::named("chunk", padded), &mut b);
    encode(
        &Event::named("throttlingException", r#"{"message":"x"}"#),
        &mut b,
    );
    let mut d = ChunkDecoder::new();
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for piece in b.chunks(7) {
        d.push_framed(piece, &mut out, &mut ends).unwrap();
    }
    d.finish().unwrap();
    assert_eq!(
        out,
        vec![
            Event::named("content_block_delta", inner),
            Event::named("message_stop", r#"{"type":"message_stop"}"#),
            Event::named("throttlingException", r#"{"message":"x"}"#),
        ]
    );
    assert_eq!(ends.len(), 3);
    assert_eq!(*ends.last().unwrap(), b.len() as u64);
    assert_eq!(d.offset(), b.len() as u64);
}

#[test]
fn bad_chunks_are_errors() {
    for payload in [
        r#"{"nobytes":1}"#,
        r#"{"bytes":"%%%"}"#,
        r#"{"bytes":"/w=="}"#,
        r#"{"bytes":"e30="}"#,
    ] {
        let mut b = Vec::new();
        encode(&Event::named("messageStart", "{}"), &mut b);
        let first = b.len() as u64;
        encode(&Event::named("chunk", payload), &mut b);
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        let e = d.push(&b, &mut out).unwrap_err();
        assert!(
            matches!(e, FrameError::BadChunk { offset, .. } if offset == first),
            "{payload}: {e}"
        );
        assert_eq!(out.len(), 1);
        assert!(d.finish().is_err());
    }
}

#[test]
fn long_names_are_clipped_not_dropped() {
    let name = "é".repeat(20_000);
    let mut b = Vec::new();
    encode(&Event::named(name.clone(), "{}"), &mut b);
    let ev = decode_all(&b).unwrap();
    let got = ev[0].event.clone().unwrap();
    assert!(got.len() <= MAX_HEADER_VALUE_LEN && name.starts_with(&got) && !got.is_empty());
}
