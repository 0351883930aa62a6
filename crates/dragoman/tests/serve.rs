//! `dragoman serve` as a process: at start it raises its open-file limit to the hard limit, and
//! at `max_connections` it stops accepting (saying so once in the log) until a connection
//! closes, so stalled clients cannot take every descriptor.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(yaml: &str) -> Gateway {
    let dir = std::env::temp_dir().join(format!("dragoman-serve-{:016x}", unique()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let log = dir.join("gateway.log");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_dragoman"))
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .env("DRAGOMAN_WORKERS", "1")
        .env("DRAGOMAN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let g = Gateway { child, port, log };
    let started = Instant::now();
    while get(g.port, Duration::from_secs(1)).is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    g
}

fn unique() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// One `GET /health/liveliness` on a new connection: the status line, if one came in time.
fn get(port: u16, wait: Duration) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    (n > 0).then(|| {
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let g = start("model_list: []\ngeneral_settings:\n  disable_spend_logs: true\n");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", g.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        nums[0], nums[1],
        "soft limit raised to the hard one: {line}"
    );
}

#[test]
fn at_the_connection_cap_new_connections_wait_until_one_closes() {
    let g = start(
        "model_list: []\ngeneral_settings:\n  disable_spend_logs: true\ndragoman_settings:\n  max_connections: 3\n  header_read_timeout_seconds: 30\n",
    );
    // Three clients that open a connection and stall halfway through their headers.
    let mut stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
            s.write_all(b"GET /health/liveliness HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // A fourth is not served while they hold the cap...
    let waiting = std::thread::spawn({
        let port = g.port;
        move || {
            let t = Instant::now();
            (get(port, Duration::from_secs(10)), t.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        !waiting.is_finished(),
        "a connection past the cap was served at once"
    );
    // ...and is served as soon as one of them goes.
    drop(stalled.remove(0));
    let (status, took) = waiting.join().unwrap();
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Log lines are written every 20 ms by the gateway's log thread.
    let mut log = String::new();
    for _ in 0..100 {
        log = std::fs::read_to_string(&g.log).unwrap();
        if log.contains("below the connection cap again") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Said when the cap is reached, not for every connection that waits (a few times here:
    // each time the served connection takes the freed place).
    let said = log.matches("connection cap reached").count();
    assert!((1..=4).contains(&said), "{log}");
    assert!(log.contains("below the connection cap again"), "{log}");
}
