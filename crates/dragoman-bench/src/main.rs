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
    /// Prints the gateway configuration the benchmark uses, for a mock on `--mock-port`.
    Config {
        #[arg(long, default_value_t = 18090)]
        mock_port: u16,
        /// The SQLite file of the usage store.
        #[arg(long)]
        db: std::path::PathBuf,
    },
    /// Sends one scenario's gateway request N times in a row on one connection (the work per
    /// request, for `scripts/instructions.sh`).
    Drive {
        /// The gateway's port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        #[arg(long, value_enum)]
        scenario: bench::Scenario,
        #[arg(long)]
        requests: usize,
        /// Make a virtual key (team, user, every limit) first and call with it.
        #[arg(long)]
        virtual_key: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mock {
            port,
            threads,
            chunks,
        } => mock::run(port, threads, chunks),
        Command::Bench(args) => bench::run(*args),
        Command::Config { mock_port, db } => {
            let mock = std::net::SocketAddr::from(([127, 0, 0, 1], mock_port));
            print!("{}", bench::gateway_config(mock, &db, true, (0, 0)));
            Ok(())
        }
        Command::Drive {
            port,
            scenario,
            requests,
            virtual_key,
        } => {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let key = if virtual_key {
                bench::virtual_key(addr)?
            } else {
                bench::API_KEY.to_owned()
            };
            let target = bench::target_with(scenario, bench::Side::Gateway, addr, (0, 0), &key)?;
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(dragoman_bench::load::sequential(&target, requests))
        }
    }
}
