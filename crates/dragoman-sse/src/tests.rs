//! Unit and property tests for SSE framing.

use proptest::prelude::*;

use super::*;

fn split_decode(bytes: &[u8], cuts: &[usize]) -> Vec<Event> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut last = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts {
        d.push(&bytes[last..c], &mut out).unwrap();
        last = c;
    }
    d.push(&bytes[last..], &mut out).unwrap();
    d.finish(&mut out).unwrap();
    out
}

#[test]
fn basic_named_events_and_done() {
    let input = b"event: message_start\ndata: {\"a\":1}\n\ndata: [DONE]\n\n";
    let ev = decode_all(input).unwrap();
    assert_eq!(
        ev,
        vec![
            Event::named("message_start", "{\"a\":1}"),
            Event::data("[DONE]")
        ]
    );
}

#[test]
fn crlf_cr_comments_multiline_and_no_trailing_newline() {
    let input =
        b": keep-alive\r\nevent: x\r\ndata: a\r\ndata:b\r\n\r\ndata: c\rdata:  d\r\rdata: last";
    let ev = decode_all(input).unwrap();
    assert_eq!(
        ev,
        vec![
            Event::named("x", "a\nb"),
            Event::data("c\n d"),
            Event::data("last")
        ]
    );
}

#[test]
fn event_without_data_is_not_dispatched_and_bom_is_stripped() {
    let ev = decode_all(b"\xEF\xBB\xBFevent: ping\n\ndata: x\n\n").unwrap();
    assert_eq!(ev, vec![Event::data("x")]);
}

#[test]
fn trailing_spaces_in_data_are_kept() {
    let ev = decode_all(b"data: {\"type\": \"ping\"}   \n\n").unwrap();
    assert_eq!(ev[0].data, "{\"type\": \"ping\"}   ");
}

#[test]
fn invalid_utf8_is_an_error_naming_the_offset() {
    let err = decode_all(b"data: ok\n\ndata: \xff\n\n").unwrap_err();
    assert_eq!(err, SseError::InvalidUtf8 { offset: 16 });
}

#[test]
fn oversized_line_is_rejected() {
    let mut d = Decoder::with_limit(8);
    let mut out = Vec::new();
    assert!(matches!(
        d.push(b"data: 0123456789", &mut out),
        Err(SseError::TooLarge { .. })
    ));
}

#[test]
fn encode_round_trips() {
    let events = vec![
        Event::named("message_start", "{\"x\":\"a\\nb\"}"),
        Event::data("line1\nline2"),
        Event::data("[DONE]"),
    ];
    let bytes = encode_all(&events);
    assert_eq!(decode_all(&bytes).unwrap(), events);
}

#[test]
fn lone_cr_at_chunk_end_followed_by_lf() {
    let ev = split_decode(b"data: a\r\n\r\ndata: b\r\n\r\n", &[8, 9, 10]);
    assert_eq!(ev, vec![Event::data("a"), Event::data("b")]);
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(
        events in proptest::collection::vec(("[a-z_.]{0,12}", "[ -~]{0,40}"), 0..8),
        crlf in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut text = String::new();
        for (name, data) in &events {
            if !name.is_empty() { text.push_str(&format!("event: {name}\n")); }
            text.push_str(&format!("data: {data}\n\n"));
            text.push_str(": comment\n");
        }
        if crlf { text = text.replace('\n', "\r\n"); }
        let whole = decode_all(text.as_bytes()).unwrap();
        prop_assert_eq!(whole.len(), events.len());
        prop_assert_eq!(split_decode(text.as_bytes(), &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                   cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut last = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for c in cuts {
            if d.push(&bytes[last..c], &mut out).is_err() { return Ok(()); }
            last = c;
        }
        let _ = d.push(&bytes[last..], &mut out).and_then(|_| d.finish(&mut out));
    }
}
