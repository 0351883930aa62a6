//! What SigV4 costs each Bedrock call: signing a Converse request of a typical agent turn
//! (a 16 KiB body: its SHA-256 dominates) and a short one, with static keys and with a session
//! token, as the adapter signs them.

#![allow(clippy::panic, clippy::unwrap_used)]

use aws_credential_types::Credentials;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn request(body: &[u8]) -> http::Request<Vec<u8>> {
    http::Request::post(
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
    )
    .header("content-type", "application/json")
    .body(body.to_vec())
    .unwrap()
}

fn sign(c: &mut Criterion) {
    let keys = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    );
    let temp = Credentials::new(
        "ASIAEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD".repeat(8)),
        None,
        "bench",
    );
    for (name, size) in [("1KiB", 1024), ("16KiB", 16 * 1024)] {
        let body = vec![b'x'; size];
        for (kind, creds) in [("static", &keys), ("session", &temp)] {
            c.bench_function(&format!("sigv4/{name}/{kind}"), |b| {
                b.iter(|| {
                    let mut req = request(&body);
                    dragoman_gateway::sigv4_sign(&mut req, creds, "us-east-1", "bedrock", &body)
                        .unwrap();
                    black_box(req)
                })
            });
        }
    }
}

criterion_group!(benches, sign);
criterion_main!(benches);
