//! Where the gateway's telemetry goes: LiteLLM's callbacks (`success_callback`,
//! `failure_callback`, `callbacks`: `otel`, `langfuse`, `generic_api`), `dragoman_settings.otel`
//! and the standard `OTEL_EXPORTER_OTLP_*` variables, resolved once at start into sinks.

use serde_json::{Map, Value};

use crate::{ConfigError, Env, Secret, err};

/// What a sink receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// OTLP/HTTP protobuf traces (`/v1/traces`).
    Otlp,
    /// Usage records as a JSON array, POSTed (LiteLLM's `generic_api`).
    Webhook,
}

#[derive(Debug, Clone)]
pub struct Sink {
    /// The callback's name as configured (`otel`, `langfuse`, `generic_api`).
    pub name: String,
    pub kind: SinkKind,
    pub url: String,
    /// Sent with every export; values may be credentials.
    pub headers: Vec<(String, Secret)>,
    /// Which requests it receives (LiteLLM's success and failure lists).
    pub on_success: bool,
    pub on_failure: bool,
}

#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    pub sinks: Vec<Sink>,
    /// `service.name` of the spans: `OTEL_SERVICE_NAME`, `otel.service_name`, or `dragoman`.
    pub service_name: String,
    /// The share of traces exported (`OTEL_TRACES_SAMPLER` `always_on`, `always_off`,
    /// `traceidratio`, `parentbased_*` with `OTEL_TRACES_SAMPLER_ARG`, or `otel.sample_ratio`;
    /// default all).
    pub sample_ratio: f64,
    /// Whether a client's `traceparent` decides (the `parentbased_*` samplers, the default).
    pub parent_based: bool,
    /// The `prometheus` callback: `/metrics` has LiteLLM's series too.
    pub prometheus: bool,
    /// Spans carry the messages and the answer (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`
    /// or `otel.capture_message_content`); off unless the operator says so.
    pub capture_content: bool,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            sinks: Vec::new(),
            service_name: "dragoman".into(),
            sample_ratio: 1.0,
            parent_based: true,
            prometheus: false,
            capture_content: false,
        }
    }
}

impl TelemetrySettings {
    pub fn traces(&self) -> bool {
        self.sinks.iter().any(|s| s.kind == SinkKind::Otlp)
    }
}

/// The callback lists as LiteLLM reads them: a name in `callbacks` gets both kinds.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub names: Vec<(String, bool, bool)>,
    pub otel: Option<Map<String, Value>>,
}

impl Callbacks {
    pub fn add(
        &mut self,
        v: &Value,
        path: &str,
        success: bool,
        failure: bool,
    ) -> Result<(), ConfigError> {
        let names: Vec<String> = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| err(path, "expected a list of callback names"))
                })
                .collect::<Result<_, _>>()?,
            Value::Null => Vec::new(),
            _ => return Err(err(path, "expected a list of callback names")),
        };
        for n in names {
            match self.names.iter_mut().find(|(x, _, _)| *x == n) {
                Some(e) => {
                    e.1 |= success;
                    e.2 |= failure;
                }
                None => self.names.push((n, success, failure)),
            }
        }
        Ok(())
    }
}

/// `k=v,k2=v2`, values percent-decoded, as the OTLP variables and LiteLLM's
/// `GENERIC_LOGGER_HEADERS` write them.
fn header_list(s: &str) -> Vec<(String, Secret)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), Secret::new(percent_decode(v.trim()))))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(h) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn resolve(
    cb: Callbacks,
    env: &dyn Env,
    warnings: &mut Vec<String>,
) -> Result<TelemetrySettings, ConfigError> {
    let get = |k: &str| env.var(k).filter(|v| !v.trim().is_empty());
    let otel_cfg = cb.otel.unwrap_or_default();
    let cfg_str = |k: &str| otel_cfg.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut sinks = Vec::new();
    let mut prometheus = false;
    let env_endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || get("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    let listed = cb
        .names
        .iter()
        .find(|(n, _, _)| n == "otel" || n == "opentelemetry");
    let exporter_off = get("OTEL_TRACES_EXPORTER").as_deref() == Some("none");
    if (listed.is_some() || !otel_cfg.is_empty() || env_endpoint) && !exporter_off {
        if let Some(p) =
            get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
            && p != "http/protobuf"
        {
            warnings.push(format!("OTEL_EXPORTER_OTLP_PROTOCOL={p}: only http/protobuf is exported (to the endpoint's /v1/traces)"));
        }
        let url = match get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(u) => u,
            None => {
                let base = cfg_str("endpoint")
                    .or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT"))
                    .unwrap_or_else(|| "http://localhost:4318".into());
                let base = base.trim_end_matches('/');
                if base.ends_with("/v1/traces") {
                    base.to_owned()
                } else {
                    format!("{base}/v1/traces")
                }
            }
        };
        let mut headers = get("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| header_list(&h))
            .unwrap_or_default();
        headers.extend(
            get("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .map(|h| header_list(&h))
                .unwrap_or_default(),
        );
        if let Some(Value::Object(h)) = otel_cfg.get("headers") {
            for (k, v) in h {
                if let Some(v) = v.as_str() {
                    let v = v
                        .strip_prefix("os.environ/")
                        .map_or_else(|| Some(v.to_owned()), |k| env.var(k))
                        .unwrap_or_default();
                    headers.push((k.clone(), Secret::new(v)));
                }
            }
        }
        let (s, f) = listed.map_or((true, true), |(_, s, f)| (*s, *f));
        sinks.push(Sink {
            name: "otel".into(),
            kind: SinkKind::Otlp,
            url,
            headers,
            on_success: s,
            on_failure: f,
        });
    }
    for (name, success, failure) in &cb.names {
        match name.as_str() {
            "otel" | "opentelemetry" => {}
            "langfuse" | "langfuse_otel" => {
                // A copied config whose environment lacks the keys still serves; the callback
                // is off, and the start log says why.
                let (Some(pk), Some(sk)) = (get("LANGFUSE_PUBLIC_KEY"), get("LANGFUSE_SECRET_KEY"))
                else {
                    warnings.push(format!("callback `{name}` is off: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not both set"));
                    continue;
                };
                let host = get("LANGFUSE_HOST")
                    .or_else(|| get("LANGFUSE_BASE_URL"))
                    .or_else(|| get("LANGFUSE_OTEL_HOST"))
                    .unwrap_or_else(|| "https://cloud.langfuse.com".into());
                use base64::Engine;
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("{pk}:{sk}"));
                sinks.push(Sink {
                    name: name.clone(),
                    kind: SinkKind::Otlp,
                    url: format!("{}/api/public/otel/v1/traces", host.trim_end_matches('/')),
                    headers: vec![("authorization".into(), Secret::new(format!("Basic {basic}")))],
                    on_success: *success,
                    on_failure: *failure,
                });
            }
            "generic_api" | "generic" => {
                let Some(url) = get("GENERIC_LOGGER_ENDPOINT") else {
                    warnings.push(format!(
                        "callback `{name}` is off: GENERIC_LOGGER_ENDPOINT is not set"
                    ));
                    continue;
                };
                sinks.push(Sink {
                    name: name.clone(),
                    kind: SinkKind::Webhook,
                    url,
                    headers: get("GENERIC_LOGGER_HEADERS")
                        .map(|h| header_list(&h))
                        .unwrap_or_default(),
                    on_success: *success,
                    on_failure: *failure,
                });
            }
            // `/metrics` is always served; the callback adds LiteLLM's names to it.
            "prometheus" => prometheus = true,
            other => warnings.push(format!(
                "callback `{other}` is not supported and is ignored (otel, langfuse and generic_api are)"
            )),
        }
    }
    let service_name = get("OTEL_SERVICE_NAME")
        .or_else(|| cfg_str("service_name"))
        .unwrap_or_else(|| "dragoman".into());
    let arg = get("OTEL_TRACES_SAMPLER_ARG")
        .and_then(|a| a.trim().parse::<f64>().ok())
        .or_else(|| otel_cfg.get("sample_ratio").and_then(Value::as_f64));
    let (sample_ratio, parent_based) = match get("OTEL_TRACES_SAMPLER").as_deref() {
        None => (arg.unwrap_or(1.0), true),
        Some("always_on") => (1.0, false),
        Some("always_off") => (0.0, false),
        Some("traceidratio") => (arg.unwrap_or(1.0), false),
        Some("parentbased_always_on") => (1.0, true),
        Some("parentbased_always_off") => (0.0, true),
        Some("parentbased_traceidratio") => (arg.unwrap_or(1.0), true),
        Some(other) => {
            warnings.push(format!(
                "OTEL_TRACES_SAMPLER={other} is not supported: every trace is sampled"
            ));
            (1.0, true)
        }
    };
    let capture_content = match get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") {
        Some(v) => matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        None => otel_cfg
            .get("capture_message_content")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(TelemetrySettings {
        sinks,
        service_name,
        sample_ratio: sample_ratio.clamp(0.0, 1.0),
        parent_based,
        prometheus,
        capture_content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn otlp_endpoint_and_headers_follow_the_standard_variables() {
        let mut cb = Callbacks::default();
        cb.add(&json!(["otel"]), "p", true, true).unwrap();
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=a%20b,api-key=k"),
        ]);
        let t = resolve(cb, &e, &mut Vec::new()).unwrap();
        assert_eq!(t.sinks.len(), 1);
        assert_eq!(t.sinks[0].url, "http://collector:4318/v1/traces");
        assert_eq!(t.sinks[0].headers[0].0, "x-tenant");
        assert_eq!(t.sinks[0].headers[0].1.expose(), "a b");
        let e = env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/custom")]);
        let t = resolve(Callbacks::default(), &e, &mut Vec::new()).unwrap();
        assert_eq!(t.sinks[0].url, "http://c/custom");
        assert!(
            resolve(Callbacks::default(), &env(&[]), &mut Vec::new())
                .unwrap()
                .sinks
                .is_empty()
        );
    }

    #[test]
    fn the_standard_sampler_variables_set_the_ratio() {
        let e = env(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        let t = resolve(Callbacks::default(), &e, &mut Vec::new()).unwrap();
        assert_eq!((t.sample_ratio, t.parent_based), (0.25, true));
        let e = env(&[("OTEL_TRACES_SAMPLER", "always_off")]);
        let t = resolve(Callbacks::default(), &e, &mut Vec::new()).unwrap();
        assert_eq!((t.sample_ratio, t.parent_based), (0.0, false));
        let t = resolve(Callbacks::default(), &env(&[]), &mut Vec::new()).unwrap();
        assert_eq!((t.sample_ratio, t.parent_based), (1.0, true));
    }

    #[test]
    fn langfuse_takes_otlp_with_basic_auth_and_unknown_callbacks_are_named() {
        let mut cb = Callbacks::default();
        cb.add(&json!(["langfuse", "datadog"]), "p", true, false)
            .unwrap();
        let e = env(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-1"),
            ("LANGFUSE_HOST", "http://lf:3000/"),
        ]);
        let mut w = Vec::new();
        let t = resolve(cb, &e, &mut w).unwrap();
        assert_eq!(t.sinks[0].url, "http://lf:3000/api/public/otel/v1/traces");
        assert_eq!(
            t.sinks[0].headers[0].1.expose(),
            "Basic cGstbGYtMTpzay1sZi0x"
        );
        assert!(t.sinks[0].on_success && !t.sinks[0].on_failure);
        assert!(w.iter().any(|w| w.contains("datadog")), "{w:?}");
        let mut cb = Callbacks::default();
        cb.add(&json!(["langfuse"]), "p", true, true).unwrap();
        let mut w = Vec::new();
        assert!(resolve(cb, &env(&[]), &mut w).unwrap().sinks.is_empty());
        assert!(w[0].contains("LANGFUSE_PUBLIC_KEY"), "{w:?}");
    }
}
