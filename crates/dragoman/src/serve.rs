//! `dragoman serve`: load the configuration (or the embedded default), bind, serve until
//! SIGTERM/SIGINT, then drain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

#[derive(clap::Args, Clone, Default)]
pub struct Args {
    /// LiteLLM-style config.yaml. Without it, models are served from OPENAI_API_KEY and
    /// ANTHROPIC_API_KEY if set.
    #[arg(long, short = 'c', env = "DRAGOMAN_CONFIG")]
    config: Option<PathBuf>,
    /// Refuse to start when a model entry names a provider or mode dragoman does not serve
    /// yet (by default such entries are skipped with a warning and the rest are served).
    #[arg(long)]
    strict: bool,
    /// Address to listen on (default 0.0.0.0 with a master key, 127.0.0.1 without one; or
    /// the config's).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on (default 4000, or the config's).
    #[arg(long, short = 'p', env = "PORT")]
    port: Option<u16>,
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Logs go to standard error, coloured only on a terminal: colour codes in a file or a
    // collector are noise, and client-supplied values are escaped where they are logged.
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            dragoman_config::parse_with(
                &text,
                &env_var,
                dragoman_config::ParseOptions {
                    strict: args.strict,
                },
            )
            .map_err(|e| anyhow::anyhow!("{e} (in {})", path.display()))?
        }
        None => dragoman_config::embedded(&env_var),
    };
    // `DRAGOMAN_LOG_FORMAT=json` (or LiteLLM's `JSON_LOGS=true`): one JSON object per line,
    // the event's fields at the top level, for a log collector.
    // Set up once the config is read (it may ask for JSON too); nothing logs before.
    let json = env_var("DRAGOMAN_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"))
        || env_var("JSON_LOGS").is_some_and(|v| v == "true" || v == "1")
        || config.json_logs;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("DRAGOMAN_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    // Lines are written by a thread of their own (`logsink`): no request thread waits on
    // standard error. The guard flushes what is waiting when `run` returns.
    let (writer, _log_guard) = crate::logsink::stderr();
    if json {
        tracing_subscriber::fmt()
            .event_format(dragoman_gateway::jsonlog::JsonLines)
            .with_writer(writer)
            .with_env_filter(filter())
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_env_filter(filter())
            .with_target(false)
            .init();
    }
    if config.master_key.is_none()
        && let Some(k) = env_var("DRAGOMAN_MASTER_KEY")
    {
        if k.trim().is_empty() {
            anyhow::bail!(
                "DRAGOMAN_MASTER_KEY is set but empty: set a key, or unset it to run without one"
            );
        }
        config.master_key = Some(dragoman_config::Secret::new(k));
    }
    if let Some(h) = args.host {
        config.server.host = h;
        config.server.host_set = true;
    }
    // An open gateway spends the operator's provider keys for whoever reaches it: without a
    // master key it listens on this machine only, unless a host was chosen explicitly.
    if config.master_key.is_none() && !config.server.host_set {
        config.server.host = "127.0.0.1".into();
    }
    raise_file_limit(&mut config.server);
    if let Some(p) = args.port {
        config.server.port = p;
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match &args.config {
        Some(p) => tracing::info!(config = %p.display(), "configuration loaded"),
        None => tracing::info!(
            "no config file: serving the embedded default (models from provider keys in the environment)"
        ),
    }
    for d in &config.deployments {
        tracing::info!(model = %d.model_name, provider = d.provider.name(), dialect = %d.dialect, upstream_model = %d.upstream_model, api_base = %d.api_base, "serving");
    }
    if config.master_key.is_none() {
        if config.server.host_set {
            tracing::warn!(
                host = %config.server.host,
                "NO MASTER KEY IS SET: the gateway is open to anyone who can reach {}:{} (set general_settings.master_key or DRAGOMAN_MASTER_KEY)",
                config.server.host,
                config.server.port
            );
        } else {
            tracing::warn!(
                "NO MASTER KEY IS SET: listening on 127.0.0.1 only, open to anyone on this machine (set a master key, or a host to listen elsewhere)"
            );
        }
    }
    let addr = format!("{}:{}", config.server.host, config.server.port);
    let workers = env_var("DRAGOMAN_WORKERS")
        .and_then(|v| v.parse::<usize>().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1);
    // This runtime runs the signal handling and the usage writer; requests are served by the
    // worker threads, each on its own runtime (see `dragoman_gateway::serve_threads`).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let database_url = if config.database.disabled {
        None
    } else {
        let url = config
            .database
            .url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .or_else(|| env_var("DATABASE_URL").filter(|u| !u.is_empty()));
        Some(url.unwrap_or_else(|| {
            let path = match (&config.database.path, &args.config) {
                (Some(p), _) => PathBuf::from(p),
                (None, Some(cfg)) => cfg
                    .parent()
                    .map(|d| d.join("dragoman.db"))
                    .unwrap_or_else(|| PathBuf::from("dragoman.db")),
                (None, None) => PathBuf::from("dragoman.db"),
            };
            format!("sqlite://{}", path.display())
        }))
    };
    let buffer = config.database.buffer;
    rt.block_on(async move {
        let (store, writer) = match database_url {
            None => {
                tracing::warn!("spend logs are disabled (general_settings.disable_spend_logs): usage is counted in /metrics only");
                (None, None)
            }
            Some(url) => {
                let store = dragoman_store::Store::connect(&url)
                    .await
                    .with_context(|| format!("cannot open the usage store {}", dragoman_store::redact_url(&url)))?;
                tracing::info!(store = %dragoman_store::redact_url(&url), "usage records are written to the store");
                let mut opts = dragoman_store::WriterOptions::default();
                if let Some(b) = buffer {
                    opts.capacity = b;
                }
                let (writer, _task) = dragoman_store::spawn_writer(std::sync::Arc::new(store.clone()), opts);
                (Some(store), Some(writer))
            }
        };
        let grace = config.server.shutdown_grace;
        let gateway = dragoman_gateway::Gateway::with_workers(config, store, writer, workers)
            .map_err(anyhow::Error::msg)?;
        match gateway.load_tenancy().await {
            Ok(n) if gateway.store_backend().is_some() => tracing::info!(keys_teams_users = n, "virtual keys loaded"),
            Ok(_) => tracing::warn!("no store (spend logs disabled): keys, teams and users made through /key/* live in memory only and are lost at restart"),
            Err(e) => anyhow::bail!("cannot read virtual keys from the store: {e}"),
        }
        gateway.start_background_tasks();
        let listener = std::net::TcpListener::bind(&addr)
            .with_context(|| format!("cannot listen on {addr}"))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let threads = dragoman_gateway::serve_threads(gateway.clone(), listener, workers, stop_rx)
            .context("cannot start the serving threads")?;
        tracing::info!(address = %addr, workers, "dragoman ready");
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut failure = None;
            for t in threads {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failure = Some(e.to_string()),
                    Err(_) => failure = Some("a serving thread panicked".to_owned()),
                }
            }
            let _ = done_tx.send(failure);
        });
        tokio::pin!(done_rx);
        let early = tokio::select! {
            r = &mut done_rx => Some(r),
            () = shutdown_signal() => None,
        };
        let failure = match early {
            Some(r) => r.ok().flatten(),
            None => {
                dragoman_gateway::log_draining(grace);
                let _ = stop_tx.send(true);
                done_rx.await.ok().flatten()
            }
        };
        dragoman_gateway::flush_usage(&gateway, grace).await;
        if let Some(e) = failure {
            anyhow::bail!("server failed: {e}");
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Raises the soft limit on open files to the hard limit (a gateway holds two descriptors per
/// stream: the client's and the upstream's), and derives the connection cap from it when the
/// config sets none, leaving room for upstream connections and the store.
fn raise_file_limit(server: &mut dragoman_config::ServerSettings) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    };
    if server.max_connections == 0 {
        server.max_connections = usize::try_from(limit.saturating_sub(64) / 2)
            .unwrap_or(usize::MAX)
            .max(16);
    }
    tracing::info!(
        open_files = limit,
        max_connections = server.max_connections,
        "file and connection limits"
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
