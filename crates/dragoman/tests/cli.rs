//! The `dragoman translate` command as a user runs it: files and standard input, translations on
//! standard output, losses on standard error, exit status 1 naming the place on bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../test_data")
        .join(rel)
}

fn run(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dragoman"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn translates_a_recorded_responses_stream_for_an_anthropic_client() {
    let f = data("responses/streams/vercel-ai__openai-reasoning-encrypted-content.1.s1.sse");
    let (code, out, _) = run(
        &[
            "translate",
            "--from",
            "responses",
            "--to",
            "anthropic",
            "--kind",
            "stream",
            f.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 0);
    let events = dragoman_sse::decode_all(out.as_bytes()).unwrap();
    assert_eq!(
        events.first().unwrap().event.as_deref(),
        Some("message_start")
    );
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    assert!(
        out.contains("signature_delta"),
        "encrypted reasoning is carried as a signature"
    );
}

#[test]
fn reads_standard_input_and_reports_losses_on_standard_error() {
    let body = br#"{"model":"claude","max_tokens":10,"top_k":3,"stop_sequences":["X"],"messages":[{"role":"user","content":"hi"}]}"#;
    let (code, out, err) = run(
        &[
            "translate",
            "--from",
            "anthropic",
            "--to",
            "responses",
            "--kind",
            "request",
        ],
        Some(body),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["max_output_tokens"], 10);
    assert!(err.lines().any(|l| l.contains("top_k")), "{err}");
    assert!(err.lines().any(|l| l.contains("stop")), "{err}");
}

#[test]
fn malformed_input_exits_non_zero_naming_the_place() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":[{"text":"no type"}]}]}"#;
    let (code, _, err) = run(
        &[
            "translate",
            "--from",
            "anthropic",
            "--to",
            "chat",
            "--kind",
            "request",
        ],
        Some(body),
    );
    assert_eq!(code, 1);
    assert!(err.contains("messages[0].content[0]"), "{err}");

    let (code, out, err) = run(
        &["translate", "--from", "chat", "--to", "anthropic", "--kind", "stream"],
        Some(b"data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {broken\n\n"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("event"), "{err}");
    // The client-side output still ends in the dialect's error event, never a success.
    assert!(
        out.contains("event: error") && !out.contains("message_stop"),
        "{out}"
    );
}
