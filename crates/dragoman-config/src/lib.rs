//! Configuration: a LiteLLM-compatible `config.yaml` read into a validated [`Config`].
//!
//! The raw YAML is walked by hand rather than derived, so that every key dragoman does not
//! support yet yields exactly one warning naming it, and every invalid value fails at start with
//! the path of the offending field. Environment lookups go through a function the caller passes
//! in, so this crate does no I/O of its own besides what the caller hands it.

mod provider;
mod router;
mod secret;
mod telemetry;

#[cfg(test)]
mod tests;

use std::time::Duration;

use dragoman_model::Dialect;
use serde_json::{Map, Value};

pub use provider::Provider;
pub use router::{FailClass, Fallbacks, RouterSettings, Strategy};
pub use secret::Secret;
pub use telemetry::{Sink, SinkKind, TelemetrySettings};

/// A configuration error, naming the path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config {path}: {message}")]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.into(),
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub deployments: Vec<Deployment>,
    pub master_key: Option<Secret>,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub router: RouterSettings,
    /// Redis, when limits and budgets are to hold across instances.
    pub redis: Option<RedisSettings>,
    /// `litellm_settings.cache: true`: the response cache.
    pub cache: Option<CacheSettings>,
    /// Traces and callbacks (`success_callback`, `failure_callback`, `callbacks`,
    /// `dragoman_settings.otel`, `OTEL_EXPORTER_OTLP_*`).
    pub telemetry: TelemetrySettings,
    /// `litellm_settings.json_logs: true`: logs as JSON lines.
    pub json_logs: bool,
    /// One line per unsupported key or suspicious value, to log at start.
    pub warnings: Vec<String>,
}

/// LiteLLM's response cache (`litellm_settings.cache` and `cache_params`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// `type: redis` shares entries across instances (through [`Config::redis`]); `local`
    /// keeps them in this instance's memory.
    pub redis: bool,
    /// How long an entry answers (`ttl`, seconds; default 10 minutes).
    pub ttl: Duration,
    /// `namespace`: a prefix of every key, so deployments can share a Redis without sharing
    /// entries.
    pub namespace: Option<String>,
    /// The dialects whose calls are cached (`supported_call_types`; default all four).
    pub dialects: Vec<Dialect>,
    /// Entries kept in memory (`max_size_in_memory`, default 1000).
    pub max_entries: usize,
}

/// Where the shared counters live: `general_settings.redis_url`, or LiteLLM's
/// `router_settings.redis_host` / `redis_port` / `redis_password` (or `redis_url`), or
/// `litellm_settings.cache_params` `host` / `port` / `password`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSettings {
    pub url: Secret,
    /// Prefix of every key dragoman writes (`dragoman_settings.redis_prefix`, default
    /// `dragoman`): instances sharing it share their limits.
    pub prefix: String,
}

/// How strictly a config is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Refuse a model entry dragoman cannot serve (an unsupported provider or mode) instead of
    /// skipping it with a warning (`--strict`).
    pub strict: bool,
}

/// Where usage records go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseSettings {
    /// `general_settings.database_url` (PostgreSQL). `DATABASE_URL` is read by the binary.
    pub url: Option<Secret>,
    /// `dragoman_settings.database_path`: the SQLite file when no URL is given (default: next to
    /// the config file, or `./dragoman.db` without one).
    pub path: Option<String>,
    /// `general_settings.disable_spend_logs: true` keeps no request log (metrics still count).
    pub disabled: bool,
    /// `dragoman_settings.usage_buffer`: records held in memory while the store is away.
    pub buffer: Option<usize>,
}

/// Listener and request-handling limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Where to listen. Without a master key and without an explicit host the gateway listens
    /// on 127.0.0.1 only (see `host_set`).
    pub host: String,
    /// Whether `host` was set by the operator (config or `--host`), not defaulted.
    pub host_set: bool,
    pub port: u16,
    /// Largest request body accepted (bytes); larger ones get a 413 in the client's dialect.
    pub max_body_bytes: usize,
    /// Silence after which a keep-alive is sent on a stream.
    pub keepalive: Duration,
    /// How long in-flight requests may run after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Largest whole upstream body read (bytes); past it the client gets a 502.
    pub max_upstream_body_bytes: usize,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body, once its headers are in.
    pub body_read_timeout: Duration,
    /// Most client connections open at once; more wait in the listen queue (0: no cap beyond
    /// the file-descriptor limit, from which the default is derived at start).
    pub max_connections: usize,
    /// `general_settings.public_metrics` (default true, as LiteLLM's `/metrics`): whether
    /// `/metrics` answers without the master key.
    pub public_metrics: bool,
    /// `dragoman_settings.strict_translation`: a request whose translation for a deployment
    /// would drop or approximate a field is refused with a 400 naming it, instead of sent
    /// with the loss reported (a client can ask the same per request: `x-dragoman-strict`).
    pub strict_translation: bool,
    /// `dragoman_settings.response_store_ttl` (seconds, default 30 days): how long an answered
    /// `/v1/responses` call stays readable (`previous_response_id`, `GET /v1/responses/{id}`).
    pub response_store_ttl: Duration,
    /// `dragoman_settings.response_store_max_bytes` (default 1 GiB): the oldest stored
    /// responses are deleted past it.
    pub response_store_max_bytes: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "0.0.0.0".into(),
            host_set: false,
            port: 4000,
            max_body_bytes: 32 * 1024 * 1024,
            keepalive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
            max_upstream_body_bytes: 32 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 0,
            public_metrics: true,
            strict_translation: false,
            response_store_ttl: Duration::from_secs(30 * 86_400),
            response_store_max_bytes: 1 << 30,
        }
    }
}

/// One upstream deployment: who to call, in which dialect, with what.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Stable id: `model_info.id`, or `<model_name>#<position>`.
    pub id: String,
    /// The public name clients send (the model group). May end in `*` to match a prefix.
    pub model_name: String,
    pub provider: Provider,
    pub dialect: Dialect,
    /// The provider's model name. For a wildcard deployment (`model_name: "claude-*"`) whose
    /// upstream model also ends in `*`, the part of the requested name that the wildcard matched
    /// replaces the `*`, as in LiteLLM.
    pub upstream_model: String,
    /// Base URL without trailing slash, e.g. `https://api.openai.com/v1`.
    pub api_base: String,
    pub api_key: Option<Secret>,
    pub api_version: Option<String>,
    pub timeout: Duration,
    pub stream_timeout: Duration,
    pub connect_timeout: Duration,
    pub extra_headers: Vec<(String, String)>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// `max_parallel_requests`: most requests in flight at once on this instance.
    pub max_parallel: Option<u32>,
    /// `weight` for simple-shuffle (relative; default: rpm, else tpm, else 1).
    pub weight: Option<f64>,
    /// `order`: priority tier, lowest first; deployments without one come after all tiers.
    pub order: Option<u32>,
    /// `max_retries`: overrides the router's retries when this deployment fails.
    pub max_retries: Option<u32>,
    /// `model_info.base_model`: the model whose price applies (an Azure deployment name
    /// says nothing about the model behind it).
    pub base_model: Option<String>,
    /// Price overrides in LiteLLM's keys (dollars per token), kept for the accounting issue.
    pub prices: Map<String, Value>,
    /// The assistant-message field in which this Chat upstream wants its own reasoning back on
    /// every turn of the history (`reasoning_content` for DeepSeek, Kimi, Qwen): without it
    /// their thinking models refuse a tool loop's next turn. The provider's default, or
    /// `litellm_params.replay_reasoning` (a field name, or `false`).
    pub reasoning_field: Option<String>,
    /// Vertex AI: where and as whom to call.
    pub google: Option<GoogleSettings>,
    /// Amazon Bedrock: region and credentials.
    pub aws: Option<AwsSettings>,
    /// `model_info.mode: embedding`: the deployment serves `/v1/embeddings` only (and
    /// generation requests never reach it).
    pub embedding: bool,
}

/// An Amazon Bedrock deployment's region and credentials, from LiteLLM's `aws_*` parameters
/// or the usual AWS environment variables. Which of them sign is decided when the gateway
/// starts (see the gateway's `bedrock` module): a bearer API key, else an assumed role, else
/// a profile, else static keys.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// `aws_profile_name`: a profile of the shared credentials and config files.
    pub profile: Option<String>,
    /// `aws_role_name`: the ARN of a role to assume with STS.
    pub role_arn: Option<String>,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    pub sts_endpoint: Option<String>,
    /// A Bedrock API key (`api_key`, `AWS_BEARER_TOKEN_BEDROCK`): sent as a bearer token
    /// instead of signing.
    pub bearer: Option<Secret>,
    /// `aws_web_identity_token`: an OIDC token exchanged with STS for the role's keys.
    pub web_identity_token: Option<Secret>,
}

/// A Vertex AI deployment's project, location and credentials (LiteLLM's `vertex_project`,
/// `vertex_location`, `vertex_credentials`).
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    pub project: String,
    pub location: String,
    /// The service-account key file's JSON.
    pub credentials: Secret,
}

impl Deployment {
    /// The upstream model for a requested name, or `None` if this deployment does not serve it.
    pub fn resolve(&self, requested: &str) -> Option<String> {
        match self.model_name.strip_suffix('*') {
            None => (self.model_name == requested).then(|| self.upstream_model.clone()),
            Some(prefix) => {
                let rest = requested.strip_prefix(prefix)?;
                Some(match self.upstream_model.strip_suffix('*') {
                    Some(up) => format!("{up}{rest}"),
                    None => self.upstream_model.clone(),
                })
            }
        }
    }
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where environment values come from (the process environment in production, a map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Parses YAML text into a validated configuration.
pub fn parse(yaml: &str, env: &dyn Env) -> Result<Config, ConfigError> {
    parse_with(yaml, env, ParseOptions::default())
}

/// Parses YAML text into a validated configuration, as `opts` says.
pub fn parse_with(yaml: &str, env: &dyn Env, opts: ParseOptions) -> Result<Config, ConfigError> {
    let root: Value = if yaml.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_saphyr::from_str(yaml).map_err(|e| err("(document)", format!("invalid yaml: {e}")))?
    };
    let Value::Object(root) = root else {
        return Err(err("(document)", "expected a mapping at the top level"));
    };
    let mut warnings = Vec::new();
    let mut deployments = Vec::new();
    let mut master_key = None;
    let mut server = ServerSettings::default();
    let mut database = DatabaseSettings::default();
    let mut routing = RouterSettings::default();
    let mut litellm_settings = None;
    let mut callbacks = telemetry::Callbacks::default();
    let mut json_logs = false;
    let mut health_interval = None;
    let mut router_settings = None;
    let mut redis_url: Option<String> = None;
    let mut redis_parts: [Option<String>; 3] = [None, None, None];
    let mut cache_on = false;
    let mut cache = CacheSettings {
        redis: false,
        ttl: Duration::from_secs(600),
        namespace: None,
        dialects: Dialect::CLIENTS.to_vec(),
        max_entries: 1000,
    };
    let mut redis_prefix = "dragoman".to_owned();
    for (key, value) in &root {
        match key.as_str() {
            "model_list" => {
                let Value::Array(list) = value else {
                    return Err(err("model_list", "expected a list"));
                };
                for (i, entry) in list.iter().enumerate() {
                    let path = format!("model_list[{i}]");
                    match deployment(&path, i, entry, env, &mut warnings)? {
                        Entry::Served(d) => deployments.push(*d),
                        Entry::Skipped(why) if opts.strict => return Err(err(path, why)),
                        Entry::Skipped(why) => {
                            warnings.push(format!("{path}: skipped: {why}; the other models are served (--strict refuses to start instead)"))
                        }
                    }
                }
            }
            "general_settings" => {
                let m = object(value, "general_settings")?;
                for (k, v) in m {
                    let path = format!("general_settings.{k}");
                    match k.as_str() {
                        "master_key" => {
                            master_key = Some(Secret::new(required_secret(v, &path, env)?))
                        }
                        "public_metrics" => server.public_metrics = boolean(v, &path)?,
                        "background_health_checks" => {
                            if boolean(v, &path)? {
                                routing
                                    .health_check_interval
                                    .get_or_insert(Duration::from_secs(300));
                            } else {
                                routing.health_check_interval = None;
                            }
                        }
                        "health_check_interval" => {
                            health_interval = Some(seconds(v, &path)?);
                        }
                        "database_url" => {
                            database.url =
                                string_value(v, &path, env, &mut warnings)?.map(Secret::new)
                        }
                        "redis_url" => redis_url = string_value(v, &path, env, &mut warnings)?,
                        "disable_spend_logs" => {
                            database.disabled = match string_value(v, &path, env, &mut warnings) {
                                Ok(Some(s)) => boolean(&Value::String(s), &path)?,
                                Ok(None) => false,
                                Err(_) => boolean(v, &path)?,
                            }
                        }
                        _ => warnings.push(format!("{path} is not supported yet and is ignored")),
                    }
                }
            }
            "dragoman_settings" | "server_settings" => {
                let m = object(value, key)?;
                for (k, v) in m {
                    let path = format!("{key}.{k}");
                    match k.as_str() {
                        "host" => {
                            server.host = req_string(v, &path)?;
                            server.host_set = true;
                        }
                        "max_upstream_body_bytes" => {
                            server.max_upstream_body_bytes = uint(v, &path)? as usize
                        }
                        "header_read_timeout_seconds" => {
                            server.header_read_timeout = seconds(v, &path)?
                        }
                        "body_read_timeout_seconds" => {
                            server.body_read_timeout = seconds(v, &path)?
                        }
                        "max_connections" => server.max_connections = uint(v, &path)? as usize,
                        "port" => {
                            server.port = u16::try_from(uint(v, &path)?)
                                .map_err(|_| err(&path, "port out of range"))?
                        }
                        "max_body_bytes" | "max_request_size_bytes" => {
                            server.max_body_bytes = uint(v, &path)? as usize
                        }
                        "keepalive_seconds" | "keepalive_interval" => {
                            server.keepalive = seconds(v, &path)?
                        }
                        "shutdown_grace_seconds" => server.shutdown_grace = seconds(v, &path)?,
                        "strict_translation" => server.strict_translation = boolean(v, &path)?,
                        "response_store_ttl" | "response_store_ttl_seconds" => {
                            server.response_store_ttl = seconds(v, &path)?
                        }
                        "response_store_max_bytes" => {
                            server.response_store_max_bytes = uint(v, &path)?
                        }
                        "database_path" => {
                            database.path = string_value(v, &path, env, &mut warnings)?
                        }
                        "usage_buffer" => database.buffer = Some(uint(v, &path)? as usize),
                        "sticky_sessions" => routing.sticky = boolean(v, &path)?,
                        "max_retry_wait_seconds" => routing.max_retry_wait = seconds(v, &path)?,
                        "redis_prefix" => redis_prefix = req_string(v, &path)?,
                        "otel" => callbacks.otel = Some(object(v, &path)?.clone()),
                        _ => warnings.push(format!("{path} is not a known setting and is ignored")),
                    }
                }
            }
            "litellm_settings" => litellm_settings = Some(object(value, key)?),
            "router_settings" => router_settings = Some(object(value, key)?),
            "environment_variables"
            | "guardrails"
            | "callback_settings"
            | "credential_list"
            | "mcp_servers"
            | "include" => {
                warnings.push(format!("{key} is not supported yet and is ignored"));
            }
            _ => warnings.push(format!("{key} is not a known section and is ignored")),
        }
    }
    // LiteLLM reads the routing keys from both sections; router_settings has the last word.
    for (section, m) in [
        ("litellm_settings", litellm_settings),
        ("router_settings", router_settings),
    ] {
        for (k, v) in m.into_iter().flatten() {
            let path = format!("{section}.{k}");
            let scalar =
                |v: &Value, warnings: &mut Vec<String>| -> Result<Option<String>, ConfigError> {
                    match v {
                        Value::Number(n) => Ok(Some(n.to_string())),
                        other => string_value(other, &path, env, warnings),
                    }
                };
            match k.as_str() {
                "redis_url" => {
                    if redis_url.is_none() {
                        redis_url = scalar(v, &mut warnings)?;
                    }
                    continue;
                }
                "redis_host" => {
                    redis_parts[0] = scalar(v, &mut warnings)?;
                    continue;
                }
                "redis_port" => {
                    redis_parts[1] = scalar(v, &mut warnings)?;
                    continue;
                }
                "redis_password" => {
                    redis_parts[2] = scalar(v, &mut warnings)?;
                    continue;
                }
                "cache" if section == "litellm_settings" => {
                    cache_on = boolean(v, &path)?;
                    continue;
                }
                "success_callback" | "failure_callback" | "callbacks"
                    if section == "litellm_settings" =>
                {
                    let (s, f) = match k.as_str() {
                        "success_callback" => (true, false),
                        "failure_callback" => (false, true),
                        _ => (true, true),
                    };
                    callbacks.add(v, &path, s, f)?;
                    continue;
                }
                // One structured line per request is `DRAGOMAN_LOG_FORMAT=json` (read by the
                // binary, which also honours this).
                "json_logs" if section == "litellm_settings" => {
                    json_logs = boolean(v, &path)?;
                    continue;
                }
                "cache_params" if section == "litellm_settings" => {
                    if let Value::Object(cp) = v {
                        for (ck, cv) in cp {
                            let cpath = format!("{path}.{ck}");
                            let i = match ck.as_str() {
                                "host" => 0,
                                "port" => 1,
                                "password" => 2,
                                "type" => {
                                    cache.redis = match scalar(cv, &mut warnings)?.as_deref() {
                                        Some("redis") => true,
                                        Some("local") | None => false,
                                        Some(other) => {
                                            return Err(err(
                                                &cpath,
                                                format!(
                                                    "cache type `{other}` is not served (local and redis are)"
                                                ),
                                            ));
                                        }
                                    };
                                    continue;
                                }
                                "ttl" => {
                                    cache.ttl = seconds(cv, &cpath)?;
                                    continue;
                                }
                                "namespace" => {
                                    cache.namespace = scalar(cv, &mut warnings)?;
                                    continue;
                                }
                                "max_size_in_memory" => {
                                    cache.max_entries = uint(cv, &cpath)? as usize;
                                    continue;
                                }
                                "supported_call_types" => {
                                    let mut ds = Vec::new();
                                    for t in cv.as_array().into_iter().flatten() {
                                        let d = match t.as_str().unwrap_or_default() {
                                            "acompletion" | "completion" => Some(Dialect::Chat),
                                            "aresponses" | "responses" => Some(Dialect::Responses),
                                            "anthropic_messages" | "amessages" | "messages" => {
                                                Some(Dialect::Anthropic)
                                            }
                                            "agenerate_content" | "generate_content" => {
                                                Some(Dialect::Gemini)
                                            }
                                            other => {
                                                warnings.push(format!("{cpath}: `{other}` calls are not cached (chat, responses, messages and generate_content calls are)"));
                                                None
                                            }
                                        };
                                        ds.extend(d.filter(|d| !ds.contains(d)));
                                    }
                                    cache.dialects = ds;
                                    continue;
                                }
                                _ => {
                                    warnings.push(format!(
                                        "{cpath} is not supported yet and is ignored"
                                    ));
                                    continue;
                                }
                            };
                            if redis_parts[i].is_none() {
                                redis_parts[i] = scalar(cv, &mut warnings)?;
                            }
                        }
                    }
                    continue;
                }
                _ => {}
            }
            if !router::key(&mut routing, k, v, &path, &mut warnings)? {
                warnings.push(format!("{path} is not supported yet and is ignored"));
            }
        }
    }
    if let Some(i) = health_interval {
        if routing.health_check_interval.is_some() {
            routing.health_check_interval = Some(i);
        } else {
            warnings.push("general_settings.health_check_interval is ignored without background_health_checks: true".into());
        }
    }
    check_groups(&deployments, &routing, &mut warnings);
    let redis_url = redis_url.or_else(|| {
        let [host, port, password] = redis_parts;
        let host = host?;
        let port = port.unwrap_or_else(|| "6379".to_owned());
        Some(match password {
            Some(p) => format!("redis://:{p}@{host}:{port}"),
            None => format!("redis://{host}:{port}"),
        })
    });
    let redis = redis_url.map(|u| RedisSettings {
        url: Secret::new(u),
        prefix: redis_prefix,
    });
    if cache_on && cache.redis && redis.is_none() {
        return Err(err(
            "litellm_settings.cache_params",
            "type redis needs a Redis: cache_params host (and port, password) or redis_url",
        ));
    }
    let telemetry = telemetry::resolve(callbacks, env, &mut warnings)?;
    Ok(Config {
        telemetry,
        json_logs,
        redis,
        cache: cache_on.then_some(cache),
        deployments,
        master_key,
        server,
        database,
        router: routing,
        warnings,
    })
}

/// Fallbacks and aliases that name no group are warned about (they may be served by a
/// wildcard, so they are kept).
fn check_groups(deps: &[Deployment], r: &RouterSettings, warnings: &mut Vec<String>) {
    let served = |name: &str| deps.iter().any(|d| d.resolve(name).is_some());
    let lists = [
        ("fallbacks", &r.fallbacks),
        ("context_window_fallbacks", &r.context_window_fallbacks),
        ("content_policy_fallbacks", &r.content_policy_fallbacks),
    ];
    for (what, list) in lists {
        for (from, to) in list {
            for name in std::iter::once(from).chain(to) {
                if !served(name) {
                    warnings.push(format!(
                        "router_settings.{what}: `{name}` is not a model of this config"
                    ));
                }
            }
        }
    }
    for name in &r.default_fallbacks {
        if !served(name) {
            warnings.push(format!(
                "router_settings.default_fallbacks: `{name}` is not a model of this config"
            ));
        }
    }
    for (alias, group, _) in &r.aliases {
        if !served(group) {
            warnings.push(format!(
                "router_settings.model_group_alias.{alias}: `{group}` is not a model of this config"
            ));
        }
    }
}

/// What one `model_list` entry became.
enum Entry {
    Served(Box<Deployment>),
    /// Valid LiteLLM, but not servable by dragoman yet: why.
    Skipped(String),
}

fn boolean(v: &Value, path: &str) -> Result<bool, ConfigError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(err(path, "expected true or false")),
    }
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ConfigError> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Err(err(path, "expected a mapping, found nothing")),
        _ => Err(err(path, "expected a mapping")),
    }
}

fn req_string(v: &Value, path: &str) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(err(path, "expected a string")),
    }
}

/// A string value that may be `os.environ/NAME`. An unset variable is a warning, not an error:
/// LiteLLM starts with it, and one missing key should not take every other model down.
fn string_value(
    v: &Value,
    path: &str,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    if v.is_null() {
        return Ok(None);
    }
    let s = req_string(v, path)?;
    match s.strip_prefix("os.environ/") {
        Some(name) => match env.var(name) {
            Some(val) if !val.is_empty() => Ok(Some(val)),
            _ => {
                warnings.push(format!("{path}: environment variable {name} is not set"));
                Ok(None)
            }
        },
        None => Ok(Some(s)),
    }
}

/// A secret that must have a value: empty text, or `os.environ/NAME` with NAME unset or empty,
/// is a start error naming what is missing (a master key that silently became "none" would
/// open the gateway).
fn required_secret(v: &Value, path: &str, env: &dyn Env) -> Result<String, ConfigError> {
    let s = req_string(v, path)?;
    let value = match s.strip_prefix("os.environ/") {
        Some(name) => match env.var(name) {
            Some(val) if !val.trim().is_empty() => val,
            _ => {
                return Err(err(
                    path,
                    format!("environment variable {name} is not set or is empty"),
                ));
            }
        },
        None => s,
    };
    if value.trim().is_empty() {
        return Err(err(
            path,
            "must not be empty (remove it to run without a key)",
        ));
    }
    Ok(value)
}

fn uint(v: &Value, path: &str) -> Result<u64, ConfigError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| err(path, "expected a non-negative integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| err(path, "expected a non-negative integer")),
        _ => Err(err(path, "expected a non-negative integer")),
    }
}

fn seconds(v: &Value, path: &str) -> Result<Duration, ConfigError> {
    let f = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match f {
        Some(f) if f.is_finite() && f > 0.0 => Ok(Duration::from_secs_f64(f)),
        _ => Err(err(path, "expected a positive number of seconds")),
    }
}

fn deployment(
    path: &str,
    position: usize,
    v: &Value,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<Entry, ConfigError> {
    let m = object(v, path)?;
    let model_name = match m.get("model_name") {
        Some(v) => req_string(v, &format!("{path}.model_name"))?,
        None => return Err(err(format!("{path}.model_name"), "required")),
    };
    if model_name.is_empty() {
        return Err(err(format!("{path}.model_name"), "must not be empty"));
    }
    let params_path = format!("{path}.litellm_params");
    let params = match m.get("litellm_params") {
        Some(p) => object(p, &params_path)?,
        None => return Err(err(params_path, "required")),
    };
    let mut mode = None;
    let mut id = None;
    let mut prices = Map::new();
    let mut rpm = None;
    let mut tpm = None;
    let mut base_model = None;
    let mut max_parallel = None;
    let mut weight = None;
    let mut order = None;
    let mut max_retries = None;
    for (k, v) in m {
        let p = format!("{path}.{k}");
        match k.as_str() {
            "model_name" | "litellm_params" => {}
            "model_info" => {
                for (ik, iv) in object(v, &p)? {
                    let ip = format!("{p}.{ik}");
                    match ik.as_str() {
                        "mode" => mode = Some(req_string(iv, &ip)?),
                        "id" => id = Some(req_string(iv, &ip)?),
                        k if is_price_key(k) => {
                            prices.insert(k.to_owned(), iv.clone());
                        }
                        "base_model" => base_model = Some(req_string(iv, &ip)?),
                        "description" => {}
                        "max_tokens" | "max_input_tokens" | "max_output_tokens" => {
                            warnings.push(format!("{ip} is informational and not enforced (the provider's own limit applies; context_window_fallbacks act on its error)"))
                        }
                        _ => warnings.push(format!("{ip} is not supported yet and is ignored")),
                    }
                }
            }
            "rpm" => rpm = Some(uint(v, &p)?),
            "tpm" => tpm = Some(uint(v, &p)?),
            _ => warnings.push(format!("{p} is not supported yet and is ignored")),
        }
    }
    let model_path = format!("{params_path}.model");
    let model = match params.get("model") {
        Some(v) => req_string(v, &model_path)?,
        None => {
            return Err(err(
                model_path,
                "required (provider/model, e.g. openai/gpt-4o)",
            ));
        }
    };
    let (provider, upstream_model) = match Provider::split(&model) {
        Ok(p) => p,
        Err(why) => return Ok(Entry::Skipped(format!("`{model}`: {why}"))),
    };
    let mut api_base = None;
    let mut api_key = None;
    let mut api_version = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let mut stream_timeout = None;
    let mut connect_timeout = DEFAULT_CONNECT_TIMEOUT;
    let mut extra_headers = Vec::new();
    let mut reasoning_field = provider.reasoning_field().map(str::to_owned);
    let mut vertex_project = None;
    let mut vertex_location = None;
    let mut vertex_credentials = None;
    let mut aws = AwsSettings::default();
    let mut aws_region = None;
    for (k, v) in params {
        let p = format!("{params_path}.{k}");
        match k.as_str() {
            "model" => {}
            "api_base" | "base_url" => api_base = string_value(v, &p, env, warnings)?,
            "api_key" => api_key = string_value(v, &p, env, warnings)?.map(Secret::new),
            "api_version" => api_version = string_value(v, &p, env, warnings)?,
            "timeout" | "request_timeout" => timeout = seconds(v, &p)?,
            "stream_timeout" => stream_timeout = Some(seconds(v, &p)?),
            "connect_timeout" => connect_timeout = seconds(v, &p)?,
            "vertex_project" | "vertex_ai_project" => {
                vertex_project = string_value(v, &p, env, warnings)?
            }
            "vertex_location" | "vertex_ai_location" => {
                vertex_location = string_value(v, &p, env, warnings)?
            }
            "vertex_credentials" | "vertex_ai_credentials" => {
                vertex_credentials = match v {
                    // LiteLLM also takes the key file inline as a mapping.
                    Value::Object(_) => Some(v.to_string()),
                    _ => string_value(v, &p, env, warnings)?,
                }
            }
            "aws_region_name" => aws_region = string_value(v, &p, env, warnings)?,
            "aws_access_key_id" => aws.access_key_id = string_value(v, &p, env, warnings)?,
            "aws_secret_access_key" => {
                aws.secret_access_key = string_value(v, &p, env, warnings)?.map(Secret::new)
            }
            "aws_session_token" => {
                aws.session_token = string_value(v, &p, env, warnings)?.map(Secret::new)
            }
            "aws_profile_name" => aws.profile = string_value(v, &p, env, warnings)?,
            "aws_role_name" => aws.role_arn = string_value(v, &p, env, warnings)?,
            "aws_session_name" => aws.session_name = string_value(v, &p, env, warnings)?,
            "aws_external_id" => aws.external_id = string_value(v, &p, env, warnings)?,
            "aws_sts_endpoint" => aws.sts_endpoint = string_value(v, &p, env, warnings)?,
            "aws_bedrock_runtime_endpoint" => api_base = string_value(v, &p, env, warnings)?,
            "aws_web_identity_token" => {
                aws.web_identity_token = string_value(v, &p, env, warnings)?.map(Secret::new)
            }
            "replay_reasoning" => {
                reasoning_field = match v {
                    Value::Bool(false) => None,
                    Value::Bool(true) => Some("reasoning_content".into()),
                    Value::String(s) if s == "reasoning_content" || s == "reasoning" => {
                        Some(s.clone())
                    }
                    _ => {
                        return Err(err(
                            &p,
                            "expected reasoning_content, reasoning, true or false",
                        ));
                    }
                }
            }
            "rpm" => rpm = Some(uint(v, &p)?),
            "tpm" => tpm = Some(uint(v, &p)?),
            "max_parallel_requests" => {
                max_parallel = Some(u32::try_from(uint(v, &p)?).map_err(|_| err(&p, "too large"))?)
            }
            "max_retries" => {
                max_retries = Some(u32::try_from(uint(v, &p)?).map_err(|_| err(&p, "too large"))?)
            }
            "order" => order = Some(u32::try_from(uint(v, &p)?).map_err(|_| err(&p, "too large"))?),
            "weight" => {
                let w = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                };
                match w {
                    Some(w) if w.is_finite() && w >= 0.0 => weight = Some(w),
                    _ => return Err(err(&p, "expected a non-negative number")),
                }
            }
            "extra_headers" | "headers" => {
                for (hk, hv) in object(v, &p)? {
                    let hp = format!("{p}.{hk}");
                    if let Some(val) = string_value(hv, &hp, env, warnings)? {
                        extra_headers.push((hk.clone(), val));
                    }
                }
            }
            k if is_price_key(k) => {
                prices.insert(k.to_owned(), v.clone());
            }
            _ => warnings.push(format!("{p} is not supported yet and is ignored")),
        }
    }
    // Providers with a dialect of their own speak only it; the OpenAI ones pick Chat or
    // Responses by mode. Vertex serves Claude in Anthropic's dialect (`rawPredict`).
    let mut upstream_model = upstream_model;
    let native = match provider {
        Provider::Vertex if upstream_model.to_ascii_lowercase().starts_with("claude") => {
            Dialect::Anthropic
        }
        Provider::Bedrock => {
            let (api, id) = bedrock_api(&upstream_model);
            upstream_model = id;
            match api {
                // A wildcard forced to InvokeModel serves the Claude ids it is asked for.
                BedrockApi::Invoke if mode.as_deref() == Some("embedding") => Dialect::Bedrock,
                BedrockApi::Invoke
                    if is_claude(&upstream_model) || upstream_model.contains('*') =>
                {
                    Dialect::Anthropic
                }
                BedrockApi::Invoke => {
                    return Ok(Entry::Skipped(format!(
                        "`{model}`: InvokeModel is served for Claude models only; other Bedrock chat models are served through Converse (bedrock/converse/…)"
                    )));
                }
                BedrockApi::Converse => Dialect::Bedrock,
            }
        }
        p => p.native_dialect(),
    };
    let own = native != Dialect::Chat;
    let embedding = mode.as_deref() == Some("embedding");
    let dialect = match mode.as_deref() {
        None | Some("chat") | Some("messages") if own => native,
        // The dialect of an embedding deployment is the one its errors come in.
        Some("embedding") => native,
        Some(other @ ("responses" | "completion")) if own => {
            return Err(err(
                format!("{path}.model_info.mode"),
                format!("`{other}` is not served by {} deployments", provider.name()),
            ));
        }
        None | Some("chat") | Some("completion") => Dialect::Chat,
        Some("responses") => Dialect::Responses,
        Some(other) if KNOWN_MODES.contains(&other) => {
            return Ok(Entry::Skipped(format!(
                "model_info.mode `{other}` is not served yet (chat and responses are)"
            )));
        }
        Some(other) => {
            return Err(err(
                format!("{path}.model_info.mode"),
                format!("`{other}` is not a LiteLLM mode"),
            ));
        }
    };
    let google = if provider == Provider::Vertex {
        Some(google_settings(
            vertex_project,
            vertex_location,
            vertex_credentials,
            &params_path,
            env,
        )?)
    } else {
        None
    };
    let api_base = match api_base {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None if provider == Provider::Vertex => {
            let location = google
                .as_ref()
                .map_or("us-central1", |g| g.location.as_str());
            vertex_base(location)
        }
        None if provider == Provider::Bedrock => {
            let region = aws_region_for(&upstream_model, aws_region.as_deref(), env);
            format!("https://bedrock-runtime.{region}.amazonaws.com")
        }
        None => match provider.default_base() {
            Some(b) => b.to_owned(),
            None => {
                return Err(err(
                    format!("{params_path}.api_base"),
                    format!("required for {} deployments", provider.name()),
                ));
            }
        },
    };
    if !(api_base.starts_with("http://") || api_base.starts_with("https://")) {
        return Err(err(
            format!("{params_path}.api_base"),
            "must start with http:// or https://",
        ));
    }
    let aws = if provider == Provider::Bedrock {
        aws.region = aws_region_for(&upstream_model, aws_region.as_deref(), env);
        Some(aws_settings(aws, api_key.take(), env))
    } else {
        None
    };
    if provider == Provider::Azure && api_version.is_none() {
        warnings.push(format!(
            "{params_path}.api_version is not set; using 2024-10-21"
        ));
        api_version = Some("2024-10-21".into());
    }
    Ok(Entry::Served(Box::new(Deployment {
        id: id.unwrap_or_else(|| format!("{model_name}#{position}")),
        model_name,
        provider,
        dialect,
        upstream_model,
        api_base,
        api_key,
        api_version,
        timeout,
        stream_timeout: stream_timeout.unwrap_or(timeout),
        connect_timeout,
        extra_headers,
        rpm,
        tpm,
        max_parallel,
        weight,
        order,
        max_retries,
        base_model,
        prices,
        reasoning_field,
        google,
        aws,
        embedding,
    })))
}

/// Which Bedrock API a LiteLLM model string selects, and the model id it names:
/// `converse/…` and `invoke/…` force one; otherwise Claude models use InvokeModel (their own
/// dialect, so nothing Anthropic-specific is lost) and every other model Converse.
fn bedrock_api(rest: &str) -> (BedrockApi, String) {
    if let Some(id) = rest.strip_prefix("converse/") {
        return (BedrockApi::Converse, id.to_owned());
    }
    if let Some(id) = rest.strip_prefix("invoke/") {
        return (BedrockApi::Invoke, id.to_owned());
    }
    let api = if is_claude(rest) || is_bedrock_embedding(rest) {
        BedrockApi::Invoke
    } else {
        BedrockApi::Converse
    };
    (api, rest.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BedrockApi {
    Converse,
    Invoke,
}

/// Whether a Bedrock model id (foundation id, cross-region profile or ARN) is Anthropic's.
fn is_claude(id: &str) -> bool {
    id.contains("anthropic.") || id.contains("claude")
}

/// Titan and Cohere embedding models, served through InvokeModel.
fn is_bedrock_embedding(id: &str) -> bool {
    id.contains("titan-embed") || id.contains("cohere.embed")
}

/// The region of a Bedrock deployment: an ARN's own, else `aws_region_name`, else
/// `AWS_REGION_NAME`, `AWS_REGION`, `AWS_DEFAULT_REGION`, else LiteLLM's default `us-west-2`.
fn aws_region_for(model: &str, configured: Option<&str>, env: &dyn Env) -> String {
    if let Some(arn) = model.strip_prefix("arn:")
        && let Some(region) = arn.split(':').nth(2).filter(|r| !r.is_empty())
    {
        return region.to_owned();
    }
    configured
        .map(str::to_owned)
        .or_else(|| env.var("AWS_REGION_NAME").filter(|s| !s.is_empty()))
        .or_else(|| env.var("AWS_REGION").filter(|s| !s.is_empty()))
        .or_else(|| env.var("AWS_DEFAULT_REGION").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "us-west-2".into())
}

/// Fills each unset credential from LiteLLM's environment fallbacks.
fn aws_settings(mut aws: AwsSettings, api_key: Option<Secret>, env: &dyn Env) -> AwsSettings {
    let var = |n: &str| env.var(n).filter(|s| !s.is_empty());
    aws.bearer = api_key.or_else(|| var("AWS_BEARER_TOKEN_BEDROCK").map(Secret::new));
    if aws.access_key_id.is_none() && aws.profile.is_none() {
        aws.access_key_id = var("AWS_ACCESS_KEY_ID");
        aws.secret_access_key = aws
            .secret_access_key
            .or_else(|| var("AWS_SECRET_ACCESS_KEY").map(Secret::new));
        aws.session_token = aws
            .session_token
            .or_else(|| var("AWS_SESSION_TOKEN").map(Secret::new));
    }
    aws.profile = aws
        .profile
        .or_else(|| var("AWS_PROFILE_NAME"))
        .or_else(|| var("AWS_PROFILE"));
    aws.role_arn = aws.role_arn.or_else(|| var("AWS_ROLE_NAME"));
    aws.web_identity_token = aws
        .web_identity_token
        .or_else(|| var("AWS_WEB_IDENTITY_TOKEN").map(Secret::new));
    aws.session_name = aws.session_name.or_else(|| var("AWS_SESSION_NAME"));
    aws
}

/// Vertex AI's host for a location: the global location has no regional prefix.
fn vertex_base(location: &str) -> String {
    match location {
        "global" => "https://aiplatform.googleapis.com".into(),
        "us" | "eu" => format!("https://aiplatform.{location}.rep.googleapis.com"),
        l => format!("https://{l}-aiplatform.googleapis.com"),
    }
}

/// A Vertex deployment's project, location and service-account key, from its parameters or
/// LiteLLM's environment fallbacks (`VERTEXAI_PROJECT`, `VERTEXAI_LOCATION`,
/// `VERTEXAI_CREDENTIALS`, then `GOOGLE_APPLICATION_CREDENTIALS`). The credentials are a path
/// or the key file's JSON itself; the project defaults to the key's.
fn google_settings(
    project: Option<String>,
    location: Option<String>,
    credentials: Option<String>,
    params_path: &str,
    env: &dyn Env,
) -> Result<GoogleSettings, ConfigError> {
    let cred_path = format!("{params_path}.vertex_credentials");
    let given = credentials
        .or_else(|| env.var("VERTEXAI_CREDENTIALS").filter(|s| !s.is_empty()))
        .or_else(|| {
            env.var("GOOGLE_APPLICATION_CREDENTIALS")
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            err(
                &cred_path,
                "required: a service-account key file (path or JSON), or GOOGLE_APPLICATION_CREDENTIALS; the metadata server and gcloud user credentials are not supported yet",
            )
        })?;
    let json = if given.trim_start().starts_with('{') {
        given
    } else {
        std::fs::read_to_string(&given)
            .map_err(|e| err(&cred_path, format!("cannot read `{given}`: {e}")))?
    };
    let key: Value = serde_json::from_str(&json)
        .map_err(|e| err(&cred_path, format!("not a key file's JSON: {e}")))?;
    if key.get("type").and_then(Value::as_str) != Some("service_account") {
        return Err(err(
            &cred_path,
            "only service-account keys (\"type\": \"service_account\") are supported",
        ));
    }
    let project = project
        .or_else(|| env.var("VERTEXAI_PROJECT").filter(|s| !s.is_empty()))
        .or_else(|| {
            key.get("project_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .ok_or_else(|| err(format!("{params_path}.vertex_project"), "required"))?;
    let location = location
        .or_else(|| env.var("VERTEXAI_LOCATION").filter(|s| !s.is_empty()))
        .or_else(|| env.var("VERTEX_LOCATION").filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "us-central1".into());
    Ok(GoogleSettings {
        project,
        location,
        credentials: Secret::new(json),
    })
}

/// LiteLLM's `model_info.mode` values: a known one dragoman does not serve yet skips the
/// entry; anything else is a typo and stops the start.
const KNOWN_MODES: &[&str] = &[
    "chat",
    "completion",
    "responses",
    "messages",
    "embedding",
    "image_generation",
    "image_edit",
    "audio_transcription",
    "audio_speech",
    "moderation",
    "rerank",
    "search",
    "batch",
    "realtime",
    "video_generation",
    "ocr",
];

fn is_price_key(k: &str) -> bool {
    k.ends_with("_cost_per_token")
        || k.ends_with("_token_cost")
        || k.contains("_cost_per_token_above_")
        || k.contains("_token_cost_above_")
        || k == "web_search_cost_per_request"
        || k == "search_context_cost_per_query"
}

/// The configuration used when no file is given: every model reachable with the provider keys
/// found in the environment, by name prefix.
pub fn embedded(env: &dyn Env) -> Config {
    let mut deployments = Vec::new();
    let mut warnings = Vec::new();
    let mut add = |prefix: &str, provider: Provider, key: &str, dialect: Dialect| {
        let base = provider.default_base().unwrap_or_default().to_owned();
        deployments.push(Deployment {
            id: format!("{}:{prefix}*", provider.name()),
            model_name: format!("{prefix}*"),
            provider,
            dialect,
            upstream_model: format!("{prefix}*"),
            api_base: base,
            api_key: Some(Secret::new(key.to_owned())),
            api_version: None,
            timeout: DEFAULT_TIMEOUT,
            stream_timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            extra_headers: Vec::new(),
            rpm: None,
            tpm: None,
            max_parallel: None,
            weight: None,
            order: None,
            max_retries: None,
            base_model: None,
            prices: Map::new(),
            reasoning_field: provider.reasoning_field().map(str::to_owned),
            google: None,
            aws: None,
            embedding: false,
        });
    };
    if let Some(k) = env.var("ANTHROPIC_API_KEY").filter(|k| !k.is_empty()) {
        add("claude-", Provider::Anthropic, &k, Dialect::Anthropic);
    }
    if let Some(k) = env.var("OPENAI_API_KEY").filter(|k| !k.is_empty()) {
        for prefix in ["gpt-", "o1", "o3", "o4", "chatgpt-", "codex-"] {
            add(prefix, Provider::OpenAi, &k, Dialect::Chat);
        }
    }
    // LiteLLM reads GEMINI_API_KEY; Google's SDKs also read GOOGLE_API_KEY.
    if let Some(k) = env
        .var("GEMINI_API_KEY")
        .or_else(|| env.var("GOOGLE_API_KEY"))
        .filter(|k| !k.is_empty())
    {
        add("gemini-", Provider::Gemini, &k, Dialect::Gemini);
    }
    if deployments.is_empty() {
        warnings.push("no config file and none of OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY is set: no models are served".into());
    }
    let master_key = env
        .var("DRAGOMAN_MASTER_KEY")
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    Config {
        deployments,
        master_key,
        server: ServerSettings::default(),
        database: DatabaseSettings::default(),
        router: RouterSettings::default(),
        redis: None,
        cache: None,
        telemetry: telemetry::resolve(telemetry::Callbacks::default(), env, &mut warnings)
            .unwrap_or_default(),
        json_logs: false,
        warnings,
    }
}
