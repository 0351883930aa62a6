//! Amazon Bedrock: the adapter that addresses a deployment's model, reshapes Claude bodies for
//! InvokeModel, and authenticates each call, either with a Bedrock API key (a bearer token) or
//! by signing it with SigV4 (the maintained `aws-sigv4` crate: canonical request, double
//! percent-encoded path, payload hash, signed headers).
//!
//! Credentials, in LiteLLM's order of precedence: an assumed role (`aws_role_name`, STS
//! AssumeRole signed with the base keys, cached and refreshed ahead of expiry off the request
//! path, as the Vertex tokens are), a named profile of the shared credentials and config files,
//! static keys from the config or `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
//! `AWS_SESSION_TOKEN`. SSO, `credential_process`, web identity and instance or container roles
//! are not read (named at start when a profile needs them).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use bytes::Bytes;
use dragoman_config::{AwsSettings, Deployment};
use dragoman_model::{Dialect, ErrorBody, ErrorKind, Framing};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::provider::{Adapter, AuthFuture, UpstreamRequest};
use crate::upstream::{self, HttpClient, Op};

/// Claude on Bedrock takes this version in the body, not Anthropic's header.
const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
/// Bedrock signs as `bedrock`, although its host is `bedrock-runtime`.
const SIGNING_NAME: &str = "bedrock";
/// How long an assumed role's credentials are asked for.
const ROLE_SECONDS: u64 = 3600;
/// Assumed credentials are not used within this much of their expiry.
const USE_MARGIN: Duration = Duration::from_secs(60);
/// From this long before expiry, a background refresh replaces them.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// Keys that sign: static ones, or those of an assumed role, kept fresh.
pub struct KeySource {
    base: Credentials,
    role: Option<Role>,
    assumed: RwLock<Option<(Credentials, Instant)>>,
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    client: HttpClient,
}

struct Role {
    arn: String,
    session_name: String,
    external_id: Option<String>,
    sts: http::Uri,
    region: String,
}

impl KeySource {
    /// The credentials to sign with now, if there are any that are still good.
    fn current(&self) -> Option<(Credentials, Option<Instant>)> {
        if self.role.is_none() {
            return Some((self.base.clone(), None));
        }
        let a = self.assumed.read().ok()?;
        let (c, expires) = a.as_ref()?;
        (Instant::now() + USE_MARGIN < *expires).then(|| (c.clone(), Some(*expires)))
    }

    async fn refresh(&self, force: bool) -> Result<(), ErrorBody> {
        let _one = self.fetching.lock().await;
        if let Some((_, Some(expires))) = self.current()
            && (!force || Instant::now() + REFRESH_AHEAD < expires)
        {
            return Ok(());
        }
        let fetched = self
            .assume()
            .await
            .map_err(|m| ErrorBody::new(ErrorKind::Server, format!("AWS credentials: {m}")))?;
        if let Ok(mut a) = self.assumed.write() {
            *a = Some(fetched);
        }
        Ok(())
    }

    /// STS AssumeRole, signed with the base keys.
    async fn assume(&self) -> Result<(Credentials, Instant), String> {
        let Some(role) = &self.role else {
            return Err("no role to assume".into());
        };
        let mut form = format!(
            "Action=AssumeRole&Version=2011-06-15&DurationSeconds={ROLE_SECONDS}&RoleArn={}&RoleSessionName={}",
            form_encode(&role.arn),
            form_encode(&role.session_name)
        );
        if let Some(x) = &role.external_id {
            form.push_str("&ExternalId=");
            form.push_str(&form_encode(x));
        }
        let body = Bytes::from(form);
        let mut req = http::Request::post(role.sts.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(http_body_util::Full::new(body.clone()))
            .map_err(|e| format!("STS request: {e}"))?;
        sign_request(&mut req, &self.base, &role.region, "sts", &body)?;
        let started = Instant::now();
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "STS did not answer in time".to_owned())?
            .map_err(|e| format!("STS is unreachable: {e}"))?;
        let status = resp.status();
        let text = tokio::time::timeout(FETCH_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| "STS did not finish its answer".to_owned())?
            .map_err(|e| format!("reading STS's answer: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&text);
        if !status.is_success() {
            let why = xml_text(&text, "Message").unwrap_or("no reason given");
            return Err(format!(
                "STS refused AssumeRole for {} ({status}): {why}",
                role.arn
            ));
        }
        let field = |tag: &str| {
            xml_text(&text, tag)
                .map(str::to_owned)
                .ok_or_else(|| format!("STS's answer has no {tag}"))
        };
        let creds = Credentials::new(
            field("AccessKeyId")?,
            field("SecretAccessKey")?,
            Some(field("SessionToken")?),
            None,
            "sts-assume-role",
        );
        Ok((creds, started + Duration::from_secs(ROLE_SECONDS)))
    }

    fn refresh_ahead(self: &Arc<Self>, expires: Instant) {
        if Instant::now() + REFRESH_AHEAD < expires || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.refresh(true).await {
                tracing::warn!(error = %e.message, "AWS role refresh failed; the current credentials are used until they expire");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }
}

/// The text of the first `<tag>…</tag>` in an AWS query-protocol XML answer. STS's answers
/// are flat and their values never hold markup, so a search is exact here.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs `req` (whose body is `body`) in place: adds `x-amz-date`, the session token when the
/// keys are temporary, and `authorization`.
pub fn sign_request<B>(
    req: &mut http::Request<B>,
    creds: &Credentials,
    region: &str,
    service: &str,
    body: &[u8],
) -> Result<(), String> {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing: {e}"))?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(&str, &str)> = req
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    if let Some(v) = req.headers_mut().get_mut(http::header::AUTHORIZATION) {
        v.set_sensitive(true);
    }
    Ok(())
}

/// The key sources of a gateway's Bedrock deployments: deployments with the same keys and role
/// share one source, so a role is assumed once.
#[derive(Default)]
pub struct KeySources(std::collections::HashMap<String, Arc<KeySource>>);

enum Auth {
    Bearer(HeaderValue),
    Sign(Arc<KeySource>),
}

/// A Bedrock deployment.
pub struct Bedrock {
    endpoints: crate::provider::Static,
    region: String,
    auth: Auth,
    dialect: Dialect,
}

impl Bedrock {
    pub fn new(
        dep: &Deployment,
        client: impl FnOnce() -> HttpClient,
        sources: &mut KeySources,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Bedrock, String> {
        let aws = dep
            .aws
            .as_ref()
            .ok_or_else(|| format!("deployment {}: no AWS settings", dep.id))?;
        let auth = match &aws.bearer {
            Some(key) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                        format!(
                            "deployment {}: the Bedrock API key is not a valid header value",
                            dep.id
                        )
                    })?;
                v.set_sensitive(true);
                Auth::Bearer(v)
            }
            None => {
                let (base, role) =
                    resolve_keys(aws, env).map_err(|e| format!("deployment {}: {e}", dep.id))?;
                // The whole identity, secret included (held in memory only): two deployments
                // that share a key id but not its secret must not share a signer.
                let cache_key = format!(
                    "{}|{}|{}|{}|{}",
                    base.access_key_id(),
                    base.secret_access_key(),
                    base.session_token().unwrap_or_default(),
                    role.as_ref().map_or("", |r| r.arn.as_str()),
                    role.as_ref().map_or("", |r| r.session_name.as_str()),
                );
                let source = match sources.0.get(&cache_key) {
                    Some(s) => s.clone(),
                    None => {
                        let s = Arc::new(KeySource {
                            base,
                            role,
                            assumed: RwLock::new(None),
                            fetching: tokio::sync::Mutex::new(()),
                            refreshing: AtomicBool::new(false),
                            client: client(),
                        });
                        sources.0.insert(cache_key, s.clone());
                        s
                    }
                };
                Auth::Sign(source)
            }
        };
        Ok(Bedrock {
            endpoints: crate::provider::Static(upstream::Endpoints::new(dep)?),
            region: aws.region.clone(),
            auth,
            dialect: dep.dialect,
        })
    }
}

/// The base keys and role of a deployment: from its profile when it names one, else from its
/// own parameters (already filled from the environment by the config).
fn resolve_keys(
    aws: &AwsSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Credentials, Option<Role>), String> {
    let mut key_id = aws.access_key_id.clone();
    let mut secret = aws
        .secret_access_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    let mut token = aws.session_token.as_ref().map(|s| s.expose().to_owned());
    let mut role_arn = aws.role_arn.clone();
    let mut external_id = aws.external_id.clone();
    if let Some(name) = &aws.profile
        && key_id.is_none()
    {
        let p = profile::load(name, env)?;
        key_id = p.key_id;
        secret = p.secret;
        token = p.token;
        role_arn = role_arn.or(p.role_arn);
        external_id = external_id.or(p.external_id);
    }
    let (Some(key_id), Some(secret)) = (key_id, secret) else {
        return Err("no AWS credentials: set aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), aws_profile_name, or a Bedrock API key (api_key or AWS_BEARER_TOKEN_BEDROCK)".into());
    };
    let base = Credentials::new(key_id, secret, token, None, "dragoman-config");
    let role = match role_arn {
        None => None,
        Some(arn) => {
            let sts = aws
                .sts_endpoint
                .clone()
                .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", aws.region));
            Some(Role {
                arn,
                session_name: aws
                    .session_name
                    .clone()
                    .unwrap_or_else(|| "dragoman".into()),
                external_id,
                sts: http::Uri::try_from(sts.as_str())
                    .map_err(|e| format!("aws_sts_endpoint `{sts}`: {e}"))?,
                region: aws.region.clone(),
            })
        }
    };
    Ok((base, role))
}

/// A Claude request body as InvokeModel takes it: no `model` and no `stream` (the path says
/// both), Bedrock's `anthropic_version`, and the client's beta flags as `anthropic_beta`.
fn claude_body(
    body: &[u8],
    client_headers: &HeaderMap,
    client: Dialect,
) -> Result<Bytes, ErrorBody> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorBody::new(
            ErrorKind::InvalidRequest,
            format!("request body is not JSON: {e}"),
        )
    })?;
    if let Some(o) = v.as_object_mut() {
        o.remove("model");
        o.remove("stream");
        o.insert("anthropic_version".into(), json!(BEDROCK_ANTHROPIC_VERSION));
        if client == Dialect::Anthropic
            && let Some(beta) = client_headers
                .get("anthropic-beta")
                .and_then(|b| b.to_str().ok())
        {
            let flags: Vec<&str> = beta
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .collect();
            if !flags.is_empty() {
                o.insert("anthropic_beta".into(), json!(flags));
            }
        }
    }
    Ok(Bytes::from(serde_json::to_vec(&v).unwrap_or_default()))
}

/// CountTokens takes the InvokeModel body base64-encoded, and only a foundation model id (a
/// cross-region profile's prefix is refused).
fn count_body(invoke_body: &[u8]) -> Bytes {
    let b64 = base64::engine::general_purpose::STANDARD.encode(invoke_body);
    Bytes::from(json!({"input": {"invokeModel": {"body": b64}}}).to_string())
}

/// The foundation model id of a cross-region inference profile id (`us.anthropic.…`).
fn foundation_id(model: &str) -> &str {
    for p in ["us.", "eu.", "apac.", "jp.", "au.", "us-gov.", "global."] {
        if let Some(rest) = model.strip_prefix(p) {
            return rest;
        }
    }
    model
}

impl Adapter for Bedrock {
    fn pending_auth(&self) -> Option<AuthFuture<'_>> {
        match &self.auth {
            Auth::Sign(s) if s.current().is_none() => {
                Some(Box::pin(s.refresh(false)) as Pin<Box<dyn Future<Output = _> + Send + '_>>)
            }
            _ => None,
        }
    }

    fn error_dialect(&self) -> Option<Dialect> {
        Some(Dialect::Bedrock)
    }

    fn refine_error(&self, headers: &HeaderMap, error: &mut ErrorBody) {
        if let Some(t) = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
        {
            error.kind = dragoman_bedrock::error_kind_from_type(t, error.status);
        }
    }

    fn framing(&self) -> Option<Framing> {
        // Claude's own events, each inside an event-stream `chunk`.
        (self.dialect != Dialect::Bedrock).then_some(Framing::EventStreamChunks)
    }

    fn build(
        &self,
        op: Op,
        model: &str,
        client: Dialect,
        client_headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamRequest, ErrorBody> {
        let claude = self.dialect == Dialect::Anthropic && op != Op::Embed;
        let (body, model) = match (claude, op) {
            (true, Op::CountTokens) => (
                count_body(&claude_body(&body, client_headers, client)?),
                foundation_id(model),
            ),
            (true, _) => (claude_body(&body, client_headers, client)?, model),
            (false, Op::CountTokens) => (body, foundation_id(model)),
            (false, _) => (body, model),
        };
        let mut req = self
            .endpoints
            .build(op, model, client, client_headers, body.clone())?;
        // The user agent is the client's and proxies may rewrite it: never signed, never
        // needed.
        req.headers_mut().remove(http::header::USER_AGENT);
        match &self.auth {
            Auth::Bearer(v) => {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, v.clone());
            }
            Auth::Sign(source) => {
                let Some((creds, expires)) = source.current() else {
                    return Err(ErrorBody::new(
                        ErrorKind::Server,
                        "AWS credentials: the assumed role has no credentials yet",
                    ));
                };
                if let Some(e) = expires {
                    source.refresh_ahead(e);
                }
                sign_request(&mut req, &creds, &self.region, SIGNING_NAME, &body)
                    .map_err(|m| ErrorBody::new(ErrorKind::Server, m))?;
            }
        }
        Ok(req)
    }
}

/// The shared AWS credentials and config files (`~/.aws/credentials`, `~/.aws/config`, or
/// `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`): static keys, and a role to assume from a
/// `source_profile`.
mod profile {
    use std::collections::HashMap;

    #[derive(Default, Debug)]
    pub struct Profile {
        pub key_id: Option<String>,
        pub secret: Option<String>,
        pub token: Option<String>,
        pub role_arn: Option<String>,
        pub external_id: Option<String>,
    }

    type Sections = HashMap<String, HashMap<String, String>>;

    /// INI as the AWS CLI writes it: `[section]`, `key = value`, `#`/`;` comments.
    fn parse(text: &str, config: bool) -> Sections {
        let mut out: Sections = HashMap::new();
        let mut current = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                // The config file names profiles `[profile x]`, except `[default]`.
                let name = if config {
                    name.strip_prefix("profile ").map_or(name, str::trim)
                } else {
                    name
                };
                current = Some(name.to_owned());
                out.entry(name.to_owned()).or_default();
                continue;
            }
            if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
                out.entry(section.clone())
                    .or_default()
                    .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        out
    }

    fn read(path: Option<String>, default: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
        let path = path.or_else(|| env("HOME").map(|h| format!("{h}/.aws/{default}")));
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    pub fn load(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Profile, String> {
        let creds = parse(
            &read(env("AWS_SHARED_CREDENTIALS_FILE"), "credentials", env),
            false,
        );
        let config = parse(&read(env("AWS_CONFIG_FILE"), "config", env), true);
        resolve(name, &creds, &config, 0)
    }

    fn resolve(
        name: &str,
        creds: &Sections,
        config: &Sections,
        depth: u32,
    ) -> Result<Profile, String> {
        if depth > 4 {
            return Err(format!(
                "AWS profile `{name}`: source_profile chain is too long"
            ));
        }
        let empty = HashMap::new();
        let c = creds.get(name).unwrap_or(&empty);
        let f = config.get(name).unwrap_or(&empty);
        if !creds.contains_key(name) && !config.contains_key(name) {
            return Err(format!(
                "AWS profile `{name}` is in neither the credentials nor the config file"
            ));
        }
        let get = |k: &str| c.get(k).or_else(|| f.get(k)).cloned();
        for unsupported in [
            "sso_start_url",
            "sso_session",
            "credential_process",
            "web_identity_token_file",
            "credential_source",
        ] {
            if get(unsupported).is_some()
                && get("aws_access_key_id").is_none()
                && get("source_profile").is_none()
            {
                return Err(format!(
                    "AWS profile `{name}` uses {unsupported}, which dragoman does not read yet; use static keys, a role with source_profile, or a Bedrock API key"
                ));
            }
        }
        if let Some(role) = get("role_arn")
            && let Some(source) = get("source_profile")
        {
            let base = resolve(&source, creds, config, depth + 1)?;
            return Ok(Profile {
                role_arn: Some(role),
                external_id: get("external_id"),
                ..base
            });
        }
        Ok(Profile {
            key_id: get("aws_access_key_id"),
            secret: get("aws_secret_access_key"),
            token: get("aws_session_token"),
            role_arn: get("role_arn"),
            external_id: get("external_id"),
        })
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        #[test]
        fn profiles_read_keys_and_roles_from_both_files() {
            let creds = parse(
                "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = s1\n\n[base]\naws_access_key_id=AKIDBASE\naws_secret_access_key=s2\naws_session_token = t2\n",
                false,
            );
            let config = parse(
                "[default]\nregion = us-east-1\n# a comment\n[profile ops]\nrole_arn = arn:aws:iam::1:role/ops\nsource_profile = base\nexternal_id = x1\n[profile sso]\nsso_session = corp\n",
                true,
            );
            let d = resolve("default", &creds, &config, 0).unwrap();
            assert_eq!(d.key_id.as_deref(), Some("AKIDDEF"));
            assert!(d.role_arn.is_none());
            let ops = resolve("ops", &creds, &config, 0).unwrap();
            assert_eq!(ops.key_id.as_deref(), Some("AKIDBASE"));
            assert_eq!(ops.token.as_deref(), Some("t2"));
            assert_eq!(ops.role_arn.as_deref(), Some("arn:aws:iam::1:role/ops"));
            assert_eq!(ops.external_id.as_deref(), Some("x1"));
            let e = resolve("sso", &creds, &config, 0).unwrap_err();
            assert!(e.contains("sso_session"), "{e}");
            assert!(resolve("missing", &creds, &config, 0).is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn claude_bodies_lose_model_and_stream_and_gain_bedrocks_version_and_betas() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", HeaderValue::from_static("a-1, b-2"));
        let b = br#"{"model":"x","max_tokens":5,"stream":true,"messages":[]}"#;
        let v: Value =
            serde_json::from_slice(&claude_body(b, &h, Dialect::Anthropic).unwrap()).unwrap();
        assert!(v.get("model").is_none() && v.get("stream").is_none());
        assert_eq!(v["anthropic_version"], "bedrock-2023-05-31");
        assert_eq!(v["anthropic_beta"], json!(["a-1", "b-2"]));
        // Another dialect's client sent no Anthropic betas.
        let v: Value = serde_json::from_slice(&claude_body(b, &h, Dialect::Chat).unwrap()).unwrap();
        assert!(v.get("anthropic_beta").is_none());
    }

    #[test]
    fn counting_wraps_the_invoke_body_and_names_the_foundation_model() {
        let v: Value = serde_json::from_slice(&count_body(b"{\"a\":1}")).unwrap();
        assert_eq!(v["input"]["invokeModel"]["body"], "eyJhIjoxfQ==");
        assert_eq!(
            foundation_id("us.anthropic.claude-haiku-4-5-20251001-v1:0"),
            "anthropic.claude-haiku-4-5-20251001-v1:0"
        );
        assert_eq!(
            foundation_id("amazon.nova-micro-v1:0"),
            "amazon.nova-micro-v1:0"
        );
    }

    #[test]
    fn sts_answers_are_read_by_tag() {
        let x = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s</SecretAccessKey></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(xml_text(x, "AccessKeyId"), Some("ASIA1"));
        assert_eq!(xml_text(x, "SessionToken"), None);
    }

    /// The key is scoped to the region and `bedrock`, and temporary keys sign their token
    /// (botocore checks the signature itself in the end-to-end tests).
    #[test]
    fn signing_adds_date_token_and_authorization_for_the_bedrock_scope() {
        let creds = Credentials::new("AKIDEXAMPLE", "secret", Some("tok".into()), None, "t");
        let mut req = http::Request::post(
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/a%3A0/converse",
        )
        .header("content-type", "application/json")
        .body(())
        .unwrap();
        sign_request(&mut req, &creds, "us-east-1", "bedrock", b"{}").unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-security-token"], "tok");
        assert!(req.headers()["authorization"].is_sensitive());
    }
}
