//! The canonical text stream the translation benchmarks and the allocation counts share: a
//! message of `n` one-token text deltas with usage at the end.

use dragoman_model::{BlockKind, Delta, StopReason, StreamEvent, Usage};

pub fn stream_events(n: usize) -> Vec<StreamEvent> {
    let mut ev = vec![
        StreamEvent::MessageStart {
            id: "msg_bench".into(),
            model: "bench-model".into(),
            usage: Usage::default(),
        },
        StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::Text,
        },
    ];
    for i in 0..n {
        ev.push(StreamEvent::BlockDelta {
            index: 0,
            delta: Delta::Text(format!("tok{i} ")),
        });
    }
    ev.push(StreamEvent::BlockStop { index: 0 });
    ev.push(StreamEvent::MessageDelta {
        stop: StopReason::EndTurn,
        usage: Usage {
            input_uncached: Some(100),
            cache_read: Some(900),
            output: Some(n as u64),
            ..Usage::default()
        },
    });
    ev.push(StreamEvent::MessageStop);
    ev
}
