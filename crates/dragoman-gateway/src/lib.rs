//! The gateway: an HTTP front door for the three dialects, routing by model name to a
//! deployment, calling it in its own dialect and answering in the client's.
//!
//! The life of one request is in [`proxy::handle`]: authenticate, parse the envelope, route,
//! translate (or pass through), call upstream, and answer — whole or as a stream pumped event
//! by event. Nothing on that path blocks or buffers a whole stream.

mod accounting;
mod attempt;
mod auth;
mod aws_creds;
mod bedrock;
mod cache;
mod compaction;
mod conversations;
mod dealer;
mod envelope;
mod errors;
mod google;
mod health;
pub mod jsonlog;
mod litellm_metrics;
mod logsafe;
mod metrics;
pub mod openapi;
mod policy;
mod principal;
mod provider;
mod proxy;
mod pump;
mod responses_api;
pub mod router;
mod routes;
mod spend;
mod telemetry;
pub mod tenancy;
mod time;
mod tokens;
mod ui;
mod upstream;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use dragoman_accounting::pricing::{self, ModelPrice};
use dragoman_config::Config;
use dragoman_model::Usage;
use dragoman_store::{Store, Writer};

/// SigV4 signing as each Bedrock call is signed (public for the signing benchmark).
pub use bedrock::sign_request as sigv4_sign;
#[doc(hidden)]
pub use conversations::{Conversations, capture_stream};
pub use hyper_util::client::proxy::matcher::Matcher as ProxyMatcher;
pub use metrics::Metrics;
pub use routes::app;

/// The output a budget reserves for when a request sets no `max_tokens`; the reservation is
/// settled to the real cost when the request ends.
pub const DEFAULT_RESERVED_OUTPUT: u64 = 4096;

/// Shared state of a running gateway.
pub struct Gateway {
    config: Config,
    /// One HTTP client per serving thread and deployment (`clients[worker][deployment]`):
    /// connect timeouts are per deployment, and a pooled upstream connection is driven by the
    /// thread that opened it, so each thread keeps its own pool (see [`serve_threads`]).
    clients: Vec<Vec<upstream::HttpClient>>,
    /// Each deployment's provider adapter: builds every attempt's request.
    adapters: Vec<Box<dyn provider::Adapter>>,
    /// Picks and ranks deployments, and learns from every attempt.
    router: router::Router,
    /// The last background health round, when background checks run.
    health: Mutex<Option<serde_json::Value>>,
    /// Per-deployment price overrides from the config (LiteLLM's keys).
    overrides: Vec<Option<ModelPrice>>,
    metrics: Metrics,
    /// Each deployment's metric series (by its model group), and those of unrouted requests.
    series: Vec<metrics::GroupSeries>,
    unrouted_series: metrics::GroupSeries,
    /// Each deployment's price for the first model it was asked to price (its configured
    /// model, unless it is a wildcard), so the price table is not searched per request.
    prices: Vec<OnceLock<(String, Option<ModelPrice>)>>,
    writer: Option<Writer>,
    store: Option<Store>,
    /// Models already warned about for having no price, so the warning comes once.
    unpriced: Mutex<HashSet<String>>,
    /// Virtual keys, teams and users, and their meters.
    tenancy: Arc<tenancy::Tenancy>,
    /// LiteLLM's response cache, when the config turns it on.
    cache: Option<Arc<cache::ResponseCache>>,
    /// Answered Responses calls, for `previous_response_id` and `item_reference` anywhere.
    conversations: Arc<conversations::Conversations>,
    /// Traces and callbacks, exported off the request path.
    telemetry: Arc<telemetry::Telemetry>,
    /// Set when shutdown's grace period ends: requests still running are cut off, and their
    /// records say so instead of blaming the client.
    cut_off: std::sync::atomic::AtomicBool,
}

impl Gateway {
    /// Starts the background health checks when the config asks for them
    /// (`general_settings.background_health_checks`); call from inside a runtime that lives
    /// as long as the gateway.
    pub fn start_background_tasks(self: &Arc<Gateway>) {
        self.tenancy.spawn_poller();
        self.telemetry.start(self.clone());
        if let Some(store) = self.store.clone() {
            // Retention: expired responses, then the oldest past the size bound.
            let max = self.config.server.response_store_max_bytes;
            tokio::spawn(async move {
                loop {
                    match store.purge_responses(tenancy::now_ms(), Some(max)).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "stored responses purged"),
                        Err(e) => tracing::warn!(error = %e, "purging stored responses failed"),
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                }
            });
        }
        if let Some(every) = self.config.router.health_check_interval {
            tracing::info!(
                interval_seconds = every.as_secs_f64(),
                "background health checks on"
            );
            health::spawn_background(self.clone(), every);
        }
    }

    /// The store's backend name, when there is a store.
    pub fn store_backend(&self) -> Option<&'static str> {
        self.store.as_ref().map(Store::backend_name)
    }

    /// Loads the keys, teams and users from the store (with each one's spend this period):
    /// call before serving. Returns how many there are.
    pub async fn load_tenancy(&self) -> Result<usize, String> {
        self.tenancy.load().await
    }

    /// The worst a request could cost on any deployment of `group`: its prompt at ~3 bytes a
    /// token (more tokens than most prompts hold) and `max_output` tokens of output
    /// ([`DEFAULT_RESERVED_OUTPUT`] when the client set none), at the dearest deployment's
    /// prices. What a budget reserves before dispatch.
    fn worst_cost(&self, group: &router::Group, body_len: usize, max_output: Option<u64>) -> i64 {
        let usage = Usage {
            input_uncached: Some(body_len.div_ceil(3) as u64),
            output: Some(max_output.unwrap_or(DEFAULT_RESERVED_OUTPUT)),
            ..Usage::default()
        };
        group
            .members
            .iter()
            .filter_map(|&i| {
                let model = self.config.deployments[i].resolve(&group.name)?;
                self.cost(i, &model, &usage)
            })
            .max()
            .unwrap_or(0)
    }

    /// The id usage records name a key by, from the key itself (`sk-…`), its current token, or
    /// its id.
    pub(crate) fn key_id_of(&self, named: &str) -> String {
        self.tenancy
            .key(named)
            .or_else(|| self.tenancy.key_by_token(named))
            .map_or_else(
                || {
                    // A key no longer held (deleted): its id is its first token's first 24
                    // hex digits.
                    let token = if named.starts_with("sk-") {
                        tenancy::hex(&tenancy::hash_key(named))
                    } else {
                        named.to_owned()
                    };
                    match token.get(..24) {
                        Some(id) if token.len() == 64 => id.to_owned(),
                        _ => token,
                    }
                },
                |e| e.doc.key_id.clone(),
            )
    }

    /// Whether shutdown has cut off the requests still running.
    pub(crate) fn is_cut_off(&self) -> bool {
        self.cut_off.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A gateway without a usage store (records still reach the metrics).
    pub fn new(config: Config) -> Result<Arc<Gateway>, String> {
        Gateway::with_store(config, None, None)
    }

    /// A gateway that writes usage records through `writer` and answers the spend API from
    /// `store`.
    pub fn with_store(
        config: Config,
        store: Option<Store>,
        writer: Option<Writer>,
    ) -> Result<Arc<Gateway>, String> {
        Gateway::with_workers(config, store, writer, 1)
    }

    /// A gateway served by `workers` threads (see [`serve_threads`]), reaching upstreams
    /// through the proxies the environment names (`HTTPS_PROXY`, `NO_PROXY`, …).
    pub fn with_workers(
        config: Config,
        store: Option<Store>,
        writer: Option<Writer>,
        workers: usize,
    ) -> Result<Arc<Gateway>, String> {
        Gateway::with_proxies(config, store, writer, workers, upstream::proxies_from_env())
    }

    /// As [`Gateway::with_workers`], with the forward proxies given (tests; embedding).
    pub fn with_proxies(
        config: Config,
        store: Option<Store>,
        writer: Option<Writer>,
        workers: usize,
        proxies: Option<Arc<ProxyMatcher>>,
    ) -> Result<Arc<Gateway>, String> {
        let mut overrides = Vec::with_capacity(config.deployments.len());
        for d in &config.deployments {
            overrides.push(
                pricing::from_litellm(&d.prices)
                    .map_err(|e| format!("deployment {}: price: {e}", d.id))?,
            );
        }
        let tls = upstream::tls_config()?;
        let mut clients = Vec::with_capacity(workers.max(1));
        for _ in 0..workers.max(1) {
            clients.push(
                config
                    .deployments
                    .iter()
                    .map(|d| upstream::client(d.connect_timeout, tls.clone(), proxies.clone()))
                    .collect(),
            );
        }
        let mut adapters: Vec<Box<dyn provider::Adapter>> =
            Vec::with_capacity(config.deployments.len());
        let mut token_sources = google::TokenSources::default();
        let mut key_sources = aws_creds::KeySources::default();
        for d in &config.deployments {
            adapters.push(match d.provider {
                dragoman_config::Provider::Vertex => {
                    let token_client =
                        || upstream::client(d.connect_timeout, tls.clone(), proxies.clone());
                    Box::new(google::Vertex::new(d, token_client, &mut token_sources)?)
                }
                dragoman_config::Provider::Bedrock => {
                    let client =
                        || upstream::client(d.connect_timeout, tls.clone(), proxies.clone());
                    Box::new(bedrock::Bedrock::new(
                        d,
                        client,
                        &mut key_sources,
                        &|n: &str| std::env::var(n).ok(),
                    )?)
                }
                _ => Box::new(provider::Static(upstream::Endpoints::new(d)?)),
            });
        }
        let router = router::Router::new(&config);
        let mut metrics = Metrics::new();
        let series = config
            .deployments
            .iter()
            .map(|d| metrics.group(&d.model_name))
            .collect();
        let unrouted_series = metrics.group("unrouted");
        let prices = config.deployments.iter().map(|_| OnceLock::new()).collect();
        let shared = match &config.redis {
            Some(r) => Some(tenancy::shared::Shared::new(
                r.url.expose(),
                &r.prefix,
                workers.max(1),
            )?),
            None => None,
        };
        let config_ttl = config.server.response_store_ttl;
        let response_cache = config
            .cache
            .clone()
            .map(|c| Arc::new(cache::ResponseCache::new(c, shared.clone())));
        let telemetry = Arc::new(telemetry::Telemetry::new(config.telemetry.clone()));
        telemetry.register(&mut metrics);
        if config.telemetry.prometheus {
            metrics.enable_litellm();
        }
        Ok(Arc::new(Gateway {
            series,
            unrouted_series,
            prices,
            config,
            clients,
            adapters,
            router,
            health: Mutex::new(None),
            overrides,
            metrics,
            writer,
            cache: response_cache,
            tenancy: Arc::new(tenancy::Tenancy::new(store.clone(), shared)),
            conversations: Arc::new(conversations::Conversations::new(store.clone(), config_ttl)),
            telemetry,
            store,
            unpriced: Mutex::new(HashSet::new()),
            cut_off: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// This thread's HTTP client for deployment `idx`.
    fn client(&self, idx: usize) -> &upstream::HttpClient {
        let w = WORKER.get() % self.clients.len().max(1);
        &self.clients[w][idx]
    }

    pub fn writer(&self) -> Option<&Writer> {
        self.writer.as_ref()
    }

    /// The name deployment `idx` is priced under when it serves `model`: `base_model` names the
    /// model behind a deployment whose own name says nothing of it (an Azure deployment); its
    /// provider prefix is not part of the price table's names.
    fn priced_as<'a>(&'a self, idx: usize, model: &'a str) -> &'a str {
        match self.config.deployments[idx].base_model.as_deref() {
            Some(b) => b.split_once('/').map_or(b, |(_, m)| m),
            None => model,
        }
    }

    /// A deployment's price for its configured model (its overrides over the built-in table).
    pub(crate) fn price_of(&self, idx: usize) -> Option<ModelPrice> {
        let model = self.priced_as(idx, &self.config.deployments[idx].upstream_model);
        pricing::merged(self.overrides[idx].clone(), pricing::builtin(model))
    }

    /// The cost of `usage` on deployment `idx` serving `model`, in nano-dollars; `None` (and a
    /// warning, once per model) when no price is known: unknown is never recorded as zero.
    fn cost(&self, idx: usize, model: &str, usage: &Usage) -> Option<i64> {
        let model = self.priced_as(idx, model);
        let price_of = || pricing::merged(self.overrides[idx].clone(), pricing::builtin(model));
        let cached = self.prices[idx].get_or_init(|| (model.to_owned(), price_of()));
        let fresh;
        let price = if cached.0 == model {
            &cached.1
        } else {
            fresh = price_of();
            &fresh
        };
        match price {
            Some(p) => pricing::cost_nanos(p, usage),
            None => {
                if let Ok(mut seen) = self.unpriced.lock()
                    && seen.insert(model.to_owned())
                {
                    tracing::warn!(model = %logsafe::Escaped(model), deployment = %self.config.deployments[idx].id, "no price known for this model: its cost is recorded as unknown (set input_cost_per_token / output_cost_per_token on the deployment)");
                }
                None
            }
        }
    }

    /// The metric series of deployment `idx`'s model group, or of unrouted requests.
    fn group_series(&self, idx: Option<usize>) -> &metrics::GroupSeries {
        idx.and_then(|i| self.series.get(i))
            .unwrap_or(&self.unrouted_series)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
}

thread_local! {
    /// Which serving thread this is (see [`serve_threads`]); 0 outside them.
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Whether this thread is one of [`serve_threads`]'s.
    static SERVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The serving thread this is, `None` outside [`serve_threads`].
pub(crate) fn worker_index() -> Option<usize> {
    SERVING.get().then(|| WORKER.get())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to the configured grace period, then flushes the usage records.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = gateway.config.server.shutdown_grace;
    let keep = gateway.clone();
    let shutdown = async move {
        shutdown.await;
        log_draining(grace);
    };
    // Without TCP_NODELAY, Nagle's algorithm holds a stream's last small event back until the
    // client's delayed ACK (~40 ms per stream, measured).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let r = serve_until(gateway, listener, shutdown).await;
    flush_usage(&keep, grace).await;
    r
}

/// Serves on `workers` threads, each a single-threaded runtime with its own upstream pools,
/// so a request and its upstream call never hop between threads. On a small machine the
/// thread hops of a work-stealing runtime cost more than the proxying (measured: ~30% of the
/// gateway's CPU per request in wake-ups and cross-CPU interrupts). One more thread accepts
/// and hands each connection to the serving thread with the fewest (see `dealer`). Returns
/// when every thread has drained after `stop` turns true; the acceptor stops accepting then.
/// The caller flushes the usage records afterwards ([`flush_usage`]).
pub fn serve_threads(
    gateway: Arc<Gateway>,
    listener: std::net::TcpListener,
    workers: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<Vec<std::thread::JoinHandle<std::io::Result<()>>>> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let (mut dealer, dealt) = dealer::deal(workers.max(1), local);
    let mut handles = Vec::new();
    for (i, listener) in dealt.into_iter().enumerate() {
        let gw = gateway.clone();
        let mut stop = stop.clone();
        let h = std::thread::Builder::new()
            .name(format!("dragoman-w{i}"))
            .spawn(move || {
                WORKER.set(i);
                SERVING.set(true);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(serve_until(gw, listener, async move {
                    let _ = stop.wait_for(|s| *s).await;
                }))
            })?;
        handles.push(h);
    }
    let mut stop = stop;
    let cap = gateway.config.server.max_connections;
    let acceptor = std::thread::Builder::new()
        .name("dragoman-accept".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let mut capped = false;
                loop {
                    // At the cap, new connections wait in the listen queue until one closes:
                    // the gateway keeps serving those it has instead of running out of files.
                    if cap > 0 && dealer.live_total() >= cap {
                        if !capped {
                            capped = true;
                            tracing::warn!(max_connections = cap, "connection cap reached: new connections wait until one closes");
                        }
                        tokio::select! {
                            () = tokio::time::sleep(std::time::Duration::from_millis(10)) => continue,
                            _ = stop.wait_for(|s| *s) => return Ok(()),
                        }
                    }
                    if capped {
                        capped = false;
                        tracing::info!("below the connection cap again");
                    }
                    tokio::select! {
                        r = listener.accept() => match r {
                            Ok((conn, _)) => {
                                // Stream events are small writes: without TCP_NODELAY, Nagle's
                                // algorithm holds the last one back until the client's delayed
                                // ACK (~40 ms per stream, measured).
                                let _ = conn.set_nodelay(true);
                                match conn.into_std() {
                                    Ok(conn) => dealer.hand(conn),
                                    Err(e) => tracing::debug!(error = %e, "dropping a connection before serving it"),
                                }
                            }
                            Err(e) => {
                                // Out of file descriptors, say: wait instead of spinning.
                                tracing::warn!(error = %e, "cannot accept a connection");
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                        },
                        _ = stop.wait_for(|s| *s) => return Ok(()),
                    }
                }
            })
        })?;
    handles.push(acceptor);
    Ok(handles)
}

/// Logged once when shutdown begins, however many threads drain.
pub fn log_draining(grace: std::time::Duration) {
    tracing::info!(
        grace_seconds = grace.as_secs_f64(),
        "shutting down: no new connections, draining in-flight requests"
    );
}

/// Serves until `shutdown`, then drains for up to the grace period. Each connection gets
/// `header_read_timeout` to send a request's headers (hyper closes it otherwise), so a client
/// that opens connections and stalls cannot hold them.
async fn serve_until<L>(
    gateway: Arc<Gateway>,
    mut listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let grace = gateway.config.server.shutdown_grace;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(gateway.config.server.header_read_timeout);
    let app = app(gateway.clone());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (io, _) = listener.accept() => {
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                conns.spawn(async move {
                    let _ = conn.await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let drained = async {
        graceful.shutdown().await;
        while conns.join_next().await.is_some() {}
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
        gateway
            .cut_off
            .store(true, std::sync::atomic::Ordering::Relaxed);
        conns.shutdown().await;
    }
    Ok(())
}

/// Flushes the usage writer at shutdown: every record of every accepted request is written
/// before the process exits, unless the store stays down past `deadline`.
pub async fn flush_usage(gateway: &Gateway, deadline: std::time::Duration) {
    gateway
        .telemetry
        .flush(deadline.min(std::time::Duration::from_secs(5)))
        .await;
    if let Some(w) = gateway.writer.clone() {
        let stats = w.close(deadline).await;
        if stats.backlog > 0 {
            tracing::error!(
                unwritten = stats.backlog,
                "usage records could not be written before shutdown"
            );
        } else {
            tracing::info!(
                written = stats.written,
                dropped = stats.dropped,
                "usage records flushed"
            );
        }
    }
}
