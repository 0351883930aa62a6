//! `dragoman translate`: one body or stream through the hub, losses on standard error.
//!
//! Streams are translated as they are read, event by event, so piping a live stream through
//! this command shows exactly what the gateway would send and when.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use dragoman_model::{Dialect, Losses, StreamOptions};
use dragoman_translate as hub;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Kind {
    Request,
    Response,
    Stream,
}

#[derive(clap::Args)]
pub struct Args {
    /// Dialect of the input: anthropic, chat or responses.
    #[arg(long, value_parser = parse_dialect)]
    from: Dialect,
    /// Dialect of the output: anthropic, chat or responses.
    #[arg(long, value_parser = parse_dialect)]
    to: Dialect,
    /// What the input is.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Prompt token count to report at the start of a stream (Anthropic `message_start`).
    #[arg(long)]
    input_estimate: Option<u64>,
    /// Input file; standard input when absent or `-`.
    file: Option<PathBuf>,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    s.parse()
}

fn open(file: &Option<PathBuf>) -> anyhow::Result<Box<dyn Read>> {
    Ok(match file {
        Some(p) if p.as_os_str() != "-" => Box::new(
            std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?,
        ),
        _ => Box::new(std::io::stdin().lock()),
    })
}

fn report(losses: &Losses) {
    let mut err = std::io::stderr().lock();
    for l in losses.iter() {
        let _ = writeln!(err, "{l}");
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut input = open(&args.file)?;
    let mut stdout = std::io::stdout().lock();
    let mut losses = Losses::new();
    match args.kind {
        Kind::Request | Kind::Response => {
            let mut body = Vec::new();
            input.read_to_end(&mut body).context("cannot read input")?;
            let out = match args.kind {
                Kind::Request => hub::translate_request(args.from, args.to, &body, &mut losses),
                _ => hub::translate_response(args.from, args.to, &body, &mut losses),
            };
            report(&losses);
            match out {
                Ok(v) => {
                    serde_json::to_writer_pretty(&mut stdout, &v)?;
                    writeln!(stdout)?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: malformed {} input: {e}", args.from);
                    Ok(ExitCode::from(1))
                }
            }
        }
        Kind::Stream => {
            let opts = StreamOptions {
                input_estimate: args.input_estimate,
                include_usage: true,
            };
            let mut t = hub::StreamTranslator::new(args.from, args.to, opts);
            let mut buf = vec![0u8; 16 * 1024];
            let mut out = Vec::new();
            let mut failure = None;
            loop {
                let n = input.read(&mut buf).context("cannot read input")?;
                out.clear();
                let r = if n == 0 {
                    t.finish(&mut out, &mut losses)
                } else {
                    t.push(&buf[..n], &mut out, &mut losses)
                };
                stdout.write_all(&out)?;
                stdout.flush()?;
                if let Err(e) = r {
                    failure = Some(e);
                    break;
                }
                if n == 0 {
                    break;
                }
            }
            report(&losses);
            match failure {
                Some(e) => {
                    eprintln!("error: malformed {} stream: {e}", args.from);
                    Ok(ExitCode::from(1))
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}
