//! Property tests of the framing: round trips, independence from read boundaries, and that no
//! single flipped bit anywhere in a message is ever accepted or panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dragoman_eventstream::{ChunkDecoder, Decoder, decode_all, encode, encode_all, encode_chunk};
use dragoman_sse::Event;
use proptest::prelude::*;

fn event() -> impl Strategy<Value = Event> {
    (
        prop_oneof![
            "[a-zA-Z]{1,20}",
            "[a-z]{1,12}Exception",
            Just("messageStart".to_owned()),
            "\\PC{1,8}",
        ],
        "\\PC{0,200}",
    )
        .prop_map(|(n, d)| Event::named(n, d))
}

fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts {
        out.push(bytes[prev..c].to_vec());
        prev = c;
    }
    out.push(bytes[prev..].to_vec());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(events in prop::collection::vec(event(), 0..20)) {
        let bytes = encode_all(&events);
        prop_assert_eq!(decode_all(&bytes).unwrap(), events);
    }

    #[test]
    fn any_split_gives_the_same_events(
        events in prop::collection::vec(event(), 1..10),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = encode_all(&events);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for piece in split(&bytes, &cuts) {
            d.push_framed(&piece, &mut out, &mut ends).unwrap();
        }
        d.finish().unwrap();
        prop_assert_eq!(&out, &events);
        // Each end is where the next message begins: cutting there decodes the prefix alone.
        let mut prev = 0u64;
        for (i, end) in ends.iter().enumerate() {
            prop_assert!(*end > prev);
            let prefix = decode_all(&bytes[..*end as usize]).unwrap();
            prop_assert_eq!(&prefix[..], &events[..=i]);
            prev = *end;
        }
        prop_assert_eq!(prev, bytes.len() as u64);
    }

    #[test]
    fn chunk_round_trip_under_any_split(
        datas in prop::collection::vec("\\PC{0,40}", 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let events: Vec<Event> = datas
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let json = serde_json::json!({"type": format!("t{i}"), "text": d}).to_string();
                Event::named(format!("t{i}"), json)
            })
            .collect();
        let mut bytes = Vec::new();
        for e in &events {
            encode_chunk(e, &mut bytes);
        }
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        for piece in split(&bytes, &cuts) {
            d.push(&piece, &mut out).unwrap();
        }
        d.finish().unwrap();
        prop_assert_eq!(out, events);
    }

    /// CRC-32 detects every single-bit error, and the prelude is checked before its lengths
    /// are trusted, so a flipped bit can neither yield an event nor make the decoder wait.
    #[test]
    fn a_flipped_bit_is_always_rejected(
        ev in event(),
        before in prop::collection::vec(event(), 0..3),
        bit in any::<usize>(),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        let mut bytes = encode_all(&before);
        let start = bytes.len();
        encode(&ev, &mut bytes);
        let len = bytes.len() - start;
        let bit = bit % (len * 8);
        bytes[start + bit / 8] ^= 1 << (bit % 8);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut failed = None;
        for piece in split(&bytes, &cuts) {
            if let Err(e) = d.push(&piece, &mut out) {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.or_else(|| d.finish().err());
        prop_assert!(failed.is_some(), "flip of bit {} accepted", bit);
        prop_assert_eq!(&out[..], &before[..]);
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let _ = d.push(&bytes, &mut out);
        let _ = d.finish();
        let mut c = ChunkDecoder::new();
        let _ = c.push(&bytes, &mut out);
        let _ = c.finish();
    }

    /// Frames whose checksums are right but whose headers are random reach the header parser
    /// of the library: it must refuse them, never panic.
    #[test]
    fn checksummed_garbage_never_panics(
        headers in prop::collection::vec(any::<u8>(), 0..120),
        payload in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let total = (16 + headers.len() + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&total.to_be_bytes());
        m.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m.extend_from_slice(&headers);
        m.extend_from_slice(&payload);
        let crc = crc32fast::hash(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        let _ = decode_all(&m);
        let mut c = ChunkDecoder::new();
        let mut out = Vec::new();
        let _ = c.push(&m, &mut out);
    }
}
