//! The `dragoman-bench` command line (`cargo xtask bench ...`): `mock` runs the mock upstream
//! as its own process, `bench` runs the benchmark.

use clap::{Parser, Subcommand};
use dragoman_bench::{bench, mock};

#[derive(Parser)]
#[command(
    name = "dragoman-bench",
    about = "Load benchmark of the dragoman gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The mock upstream (OpenAI Chat, OpenAI Responses, Anthropic Messages; JSON and SSE).
    Mock {
        #[arg(long, default_value_t = 18090)]
        port: u16,
        /// Worker threads (default: one per CPU).
        #[arg(long)]
        threads: Option<usize>,
        /// Text deltas per stream (a request's x-mock-chunks overrides).
        #[arg(long, default_value_t = mock::DEFAULT_CHUNKS)]
        chunks: usize,
    },
    /// Direct-to-mock against through-the-gateway, per scenario and concurrency.
    Bench(Box<bench::Args>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mock {
            port,
            threads,
            chunks,
        } => mock::run(port, threads, chunks),
        Command::Bench(args) => bench::run(*args),
    }
}
