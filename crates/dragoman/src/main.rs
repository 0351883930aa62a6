//! The `dragoman` command line: the composition root that wires the crates into commands.
//!
//! `dragoman serve` (or plain `dragoman --config FILE`, as LiteLLM users type it) runs the
//! gateway; `dragoman translate` runs the translation core on one body or stream.

mod logsink;
mod serve;
mod translate;

use clap::{Parser, Subcommand};

// The gateway allocates per request and per stream event. jemalloc and mimalloc measured the
// same on the load benchmark (mimalloc was 10-20% faster than the system allocator on the
// translation benchmarks); jemalloc's background thread returns freed pages while the gateway is idle,
// where mimalloc only purges when it next allocates: a minute after 1,000 streams RSS was
// 30 MiB against 78 MiB.
#[cfg(all(
    feature = "jemalloc",
    not(any(feature = "mimalloc", feature = "system-alloc"))
))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "system-alloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dragoman",
    version,
    about = "LLM API gateway: any dialect in, any dialect out"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, these serve the gateway (LiteLLM's `litellm --config FILE`).
    #[command(flatten)]
    serve: serve::Args,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(serve::Args),
    /// Translate a request body, a JSON response or an SSE stream from one dialect to another.
    Translate(translate::Args),
}

fn main() -> std::process::ExitCode {
    // Purging on a background thread is what gives memory back to an idle gateway; without it
    // (an old kernel, say) jemalloc still works and purges as it allocates.
    #[cfg(all(
        feature = "jemalloc",
        not(any(feature = "mimalloc", feature = "system-alloc"))
    ))]
    let _ = tikv_jemalloc_ctl::background_thread::write(true);
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Translate(args)) => translate::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        None => serve::run(cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
