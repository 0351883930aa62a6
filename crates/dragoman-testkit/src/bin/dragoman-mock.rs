//! `dragoman-mock [PORT]`: the scripted mock upstream as a process, for end-to-end tests with
//! real SDKs and CLIs. Prints `listening on http://ADDR` once ready.

use std::io::Write as _;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mock = dragoman_testkit::MockUpstream::start_on(port).await;
    println!("listening on http://{}", mock.addr);
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
