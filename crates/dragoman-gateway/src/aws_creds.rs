//! Where a Bedrock deployment's signing keys come from, and keeping temporary ones fresh.
//!
//! Sources, in LiteLLM's order of precedence (first that applies):
//! 1. web identity (`aws_web_identity_token` + `aws_role_name`): STS AssumeRoleWithWebIdentity;
//! 2. a role (`aws_role_name`, or a profile's `role_arn` + `source_profile`): STS AssumeRole
//!    signed with the base keys;
//! 3. a profile of the shared credentials and config files (`aws_profile_name`);
//! 4. static keys (`aws_access_key_id` / `aws_secret_access_key` / `aws_session_token`, or the
//!    `AWS_*` environment variables);
//! 5. the rest of the default chain: EKS web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` +
//!    `AWS_ROLE_ARN`), the ECS/EKS container endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI` or
//!    `…_RELATIVE_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`), then the EC2
//!    instance metadata service (IMDSv2; `AWS_EC2_METADATA_DISABLED=true` turns it off).
//!
//! Temporary keys are fetched before the first call that needs them, used until a minute
//! before they expire, and replaced by one background refresh from five minutes before, so
//! requests never wait for STS or the metadata service while good keys exist. SSO and
//! `credential_process` profiles are refused at start, by name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use dragoman_config::AwsSettings;
use dragoman_model::{ErrorBody, ErrorKind};
use http_body_util::BodyExt as _;
use serde_json::Value;

use crate::upstream::HttpClient;

/// How long an assumed role's keys are asked for.
const ROLE_SECONDS: u64 = 3600;
/// Temporary keys are not used within this much of their expiry.
const USE_MARGIN: Duration = Duration::from_secs(60);
/// From this long before expiry, a background refresh replaces them.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// The metadata service answers in milliseconds where it exists; where it does not (a laptop),
/// a call must not hang on it.
const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys whose answer names no expiry are refetched this often.
const UNDATED_LIFETIME: Duration = Duration::from_secs(900);

/// A web identity token: given in the config, or read from a file each time (Kubernetes
/// rotates the projected token).
enum TokenFrom {
    Inline(String),
    File(String),
}

impl TokenFrom {
    fn read(&self) -> Result<String, String> {
        match self {
            TokenFrom::Inline(t) => Ok(t.clone()),
            TokenFrom::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("cannot read the token file `{p}`: {e}")),
        }
    }
}

/// How temporary keys are fetched.
enum Fetch {
    AssumeRole {
        base: Credentials,
        arn: String,
        session_name: String,
        external_id: Option<String>,
        sts: http::Uri,
        region: String,
    },
    WebIdentity {
        token: TokenFrom,
        arn: String,
        session_name: String,
        sts: http::Uri,
    },
    Container {
        uri: http::Uri,
        auth: Option<TokenFrom>,
    },
    Imds {
        endpoint: String,
    },
}

impl Fetch {
    fn describe(&self) -> String {
        match self {
            Fetch::AssumeRole { arn, .. } => format!("STS AssumeRole of {arn}"),
            Fetch::WebIdentity { arn, .. } => format!("STS AssumeRoleWithWebIdentity of {arn}"),
            Fetch::Container { uri, .. } => format!("the container credentials endpoint {uri}"),
            Fetch::Imds { endpoint } => format!("the instance metadata service at {endpoint}"),
        }
    }
}

/// The keys that sign a deployment's calls: fixed, or fetched and kept fresh.
pub struct KeySource {
    fixed: Option<Credentials>,
    fetch: Option<Fetch>,
    fetched: RwLock<Option<(Credentials, Instant)>>,
    /// One fetch at a time; callers that found no keys wait on it together.
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
    client: HttpClient,
}

impl KeySource {
    /// Where the keys come from, for the start log (never the keys).
    pub fn describe(&self) -> String {
        match (&self.fetch, &self.fixed) {
            (Some(f), _) => f.describe(),
            (None, Some(c)) => format!("static keys ({})", c.access_key_id()),
            (None, None) => "nothing".into(),
        }
    }

    /// The keys to sign with now and, for temporary ones, their expiry; `None` when temporary
    /// keys are missing or about to expire.
    pub fn current(&self) -> Option<(Credentials, Option<Instant>)> {
        if let Some(c) = &self.fixed {
            return Some((c.clone(), None));
        }
        let f = self.fetched.read().ok()?;
        let (c, expires) = f.as_ref()?;
        (Instant::now() + USE_MARGIN < *expires).then(|| (c.clone(), Some(*expires)))
    }

    /// Fetches keys unless good ones arrived while waiting (`force`: fetch anyway, to replace
    /// keys about to expire).
    pub async fn refresh(&self, force: bool) -> Result<(), ErrorBody> {
        let _one = self.fetching.lock().await;
        if let Some((_, Some(expires))) = self.current()
            && (!force || Instant::now() + REFRESH_AHEAD < expires)
        {
            return Ok(());
        }
        let Some(fetch) = &self.fetch else {
            return Ok(());
        };
        let got = self.get(fetch).await.map_err(|m| {
            ErrorBody::new(
                ErrorKind::Server,
                format!("AWS credentials from {}: {m}", fetch.describe()),
            )
        })?;
        if let Ok(mut f) = self.fetched.write() {
            *f = Some(got);
        }
        Ok(())
    }

    /// Starts one background refresh when the keys are close to expiry.
    pub fn refresh_ahead(self: &Arc<Self>, expires: Instant) {
        if Instant::now() + REFRESH_AHEAD < expires || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.refresh(true).await {
                tracing::warn!(error = %e.message, "AWS credential refresh failed; the current keys are used until they expire");
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    async fn get(&self, fetch: &Fetch) -> Result<(Credentials, Instant), String> {
        let started = Instant::now();
        match fetch {
            Fetch::AssumeRole {
                base,
                arn,
                session_name,
                external_id,
                sts,
                region,
            } => {
                let mut form = format!(
                    "Action=AssumeRole&Version=2011-06-15&DurationSeconds={ROLE_SECONDS}&RoleArn={}&RoleSessionName={}",
                    crate::upstream::percent_encode(arn),
                    crate::upstream::percent_encode(session_name)
                );
                if let Some(x) = external_id {
                    form.push_str("&ExternalId=");
                    form.push_str(&crate::upstream::percent_encode(x));
                }
                let body = Bytes::from(form);
                let mut req = form_post(sts, body.clone())?;
                crate::bedrock::sign_request(&mut req, base, region, "sts", &body)?;
                let text = self.call(req, FETCH_TIMEOUT, "STS").await?;
                sts_keys(&text, started)
            }
            Fetch::WebIdentity {
                token,
                arn,
                session_name,
                sts,
            } => {
                // Unsigned: the token is the proof.
                let form = format!(
                    "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&DurationSeconds={ROLE_SECONDS}&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
                    crate::upstream::percent_encode(arn),
                    crate::upstream::percent_encode(session_name),
                    crate::upstream::percent_encode(&token.read()?)
                );
                let req = form_post(sts, Bytes::from(form))?;
                let text = self.call(req, FETCH_TIMEOUT, "STS").await?;
                sts_keys(&text, started)
            }
            Fetch::Container { uri, auth } => {
                let mut req = http::Request::get(uri.clone());
                if let Some(a) = auth {
                    req = req.header(http::header::AUTHORIZATION, a.read()?);
                }
                let req = req
                    .body(http_body_util::Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let text = self
                    .call(req, FETCH_TIMEOUT, "the container endpoint")
                    .await?;
                json_keys(&text, started)
            }
            Fetch::Imds { endpoint } => {
                let token_req = http::Request::put(format!("{endpoint}/latest/api/token"))
                    .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                    .body(http_body_util::Full::new(Bytes::new()))
                    .map_err(|e| e.to_string())?;
                let token = self.call(token_req, IMDS_TIMEOUT, "IMDS").await?;
                let get = |path: String| {
                    http::Request::get(format!("{endpoint}{path}"))
                        .header("x-aws-ec2-metadata-token", token.trim())
                        .body(http_body_util::Full::new(Bytes::new()))
                        .map_err(|e| e.to_string())
                };
                let base = "/latest/meta-data/iam/security-credentials/";
                let role = self.call(get(base.into())?, IMDS_TIMEOUT, "IMDS").await?;
                let role = role.lines().next().unwrap_or_default().trim().to_owned();
                if role.is_empty() {
                    return Err("the instance has no IAM role".into());
                }
                let text = self
                    .call(get(format!("{base}{role}"))?, IMDS_TIMEOUT, "IMDS")
                    .await?;
                json_keys(&text, started)
            }
        }
    }

    /// One call to a credential endpoint: its body when it answered 2xx.
    async fn call(
        &self,
        req: http::Request<http_body_util::Full<Bytes>>,
        limit: Duration,
        who: &str,
    ) -> Result<String, String> {
        let resp = tokio::time::timeout(limit, self.client.request(req))
            .await
            .map_err(|_| format!("{who} did not answer within {} s", limit.as_secs()))?
            .map_err(|e| format!("{who} is unreachable: {e}"))?;
        let status = resp.status();
        let body = tokio::time::timeout(limit, resp.into_body().collect())
            .await
            .map_err(|_| format!("{who} did not finish its answer"))?
            .map_err(|e| format!("reading {who}'s answer: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            let why = xml_text(&text, "Message")
                .map(str::to_owned)
                .or_else(|| {
                    serde_json::from_str::<Value>(&text)
                        .ok()?
                        .get("message")?
                        .as_str()
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "no reason given".into());
            return Err(format!("{who} refused ({status}): {why}"));
        }
        Ok(text)
    }
}

fn form_post(
    uri: &http::Uri,
    body: Bytes,
) -> Result<http::Request<http_body_util::Full<Bytes>>, String> {
    http::Request::post(uri.clone())
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(http_body_util::Full::new(body))
        .map_err(|e| format!("STS request: {e}"))
}

/// The keys of an STS answer (AssumeRole and AssumeRoleWithWebIdentity share the shape).
fn sts_keys(xml: &str, started: Instant) -> Result<(Credentials, Instant), String> {
    let field = |tag: &str| {
        xml_text(xml, tag)
            .map(str::to_owned)
            .ok_or_else(|| format!("STS's answer has no {tag}"))
    };
    let creds = Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        Some(field("SessionToken")?),
        None,
        "sts",
    );
    let expires = xml_text(xml, "Expiration")
        .and_then(|e| expiry(e, started))
        .unwrap_or(started + Duration::from_secs(ROLE_SECONDS));
    Ok((creds, expires))
}

/// The keys of a container or IMDS answer: `{AccessKeyId, SecretAccessKey, Token, Expiration}`.
fn json_keys(text: &str, started: Instant) -> Result<(Credentials, Instant), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("the answer has no {k}"))
    };
    let token = v.get("Token").and_then(Value::as_str).map(str::to_owned);
    let creds = Credentials::new(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        token,
        None,
        "container",
    );
    let expires = v
        .get("Expiration")
        .and_then(Value::as_str)
        .and_then(|e| expiry(e, started))
        .unwrap_or(started + UNDATED_LIFETIME);
    Ok((creds, expires))
}

/// An RFC 3339 expiry as an instant, measured from when the fetch started. Keys just issued
/// are good for at least 15 minutes (STS's shortest session): an expiry sooner than that means
/// this machine's clock and the issuer's disagree, and believing it would refetch on every call.
fn expiry(s: &str, started: Instant) -> Option<Instant> {
    let at = crate::time::parse_time(s)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .ok()?;
    let left = Duration::from_millis(u64::try_from(at - now).unwrap_or(0));
    Some(started + left.max(MIN_LIFETIME))
}

const MIN_LIFETIME: Duration = Duration::from_secs(900);

/// The text of the first `<tag>…</tag>` in an AWS query-protocol XML answer. STS's answers
/// are flat and their values never hold markup, so a search is exact here.
pub fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// The key sources of a gateway's Bedrock deployments: deployments with the same identity
/// share one source, so a role is assumed once and the metadata service asked once.
#[derive(Default)]
pub struct KeySources(std::collections::HashMap<String, Arc<KeySource>>);

impl KeySources {
    /// The source of `aws`'s keys, shared with any deployment of the same identity.
    pub fn for_settings(
        &mut self,
        aws: &AwsSettings,
        env: &dyn Fn(&str) -> Option<String>,
        client: impl FnOnce() -> HttpClient,
    ) -> Result<Arc<KeySource>, String> {
        let (fixed, fetch, identity) = resolve(aws, env)?;
        if let Some(s) = self.0.get(&identity) {
            return Ok(s.clone());
        }
        let s = Arc::new(KeySource {
            fixed,
            fetch,
            fetched: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            client: client(),
        });
        self.0.insert(identity, s.clone());
        Ok(s)
    }
}

/// Picks the source (see the module's list) and names the identity for sharing. The identity
/// holds secrets, in memory only: two deployments sharing a key id but not its secret must not
/// share a signer.
fn resolve(
    aws: &AwsSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<Credentials>, Option<Fetch>, String), String> {
    let var = |n: &str| env(n).filter(|s| !s.is_empty());
    let sts_of = || -> Result<http::Uri, String> {
        let sts = aws
            .sts_endpoint
            .clone()
            .unwrap_or_else(|| format!("https://sts.{}.amazonaws.com/", aws.region));
        http::Uri::try_from(sts.as_str()).map_err(|e| format!("aws_sts_endpoint `{sts}`: {e}"))
    };
    let session_name = aws
        .session_name
        .clone()
        .unwrap_or_else(|| "dragoman".into());
    if let Some(token) = &aws.web_identity_token {
        let Some(arn) = aws.role_arn.clone() else {
            return Err("aws_web_identity_token needs aws_role_name (the role to assume)".into());
        };
        let identity = format!("wi|{arn}|{session_name}|{}", token.expose());
        let fetch = Fetch::WebIdentity {
            token: TokenFrom::Inline(token.expose().to_owned()),
            arn,
            session_name,
            sts: sts_of()?,
        };
        return Ok((None, Some(fetch), identity));
    }
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
    if let (Some(key_id), Some(secret)) = (key_id, secret) {
        let base = Credentials::new(key_id, secret, token, None, "dragoman-config");
        let identity = format!(
            "k|{}|{}|{}",
            base.access_key_id(),
            base.secret_access_key(),
            base.session_token().unwrap_or_default()
        );
        return Ok(match role_arn {
            None => (Some(base), None, identity),
            Some(arn) => {
                let identity = format!("{identity}|{arn}|{session_name}");
                let fetch = Fetch::AssumeRole {
                    base,
                    arn,
                    session_name,
                    external_id,
                    sts: sts_of()?,
                    region: aws.region.clone(),
                };
                (None, Some(fetch), identity)
            }
        });
    }
    if aws.role_arn.is_some() && var("AWS_WEB_IDENTITY_TOKEN_FILE").is_none() {
        return Err("aws_role_name needs base keys to assume it with (aws_access_key_id and aws_secret_access_key, or a profile)".into());
    }
    // The default chain.
    if let (Some(file), Some(arn)) = (
        var("AWS_WEB_IDENTITY_TOKEN_FILE"),
        aws.role_arn.clone().or_else(|| var("AWS_ROLE_ARN")),
    ) {
        let session_name = aws
            .session_name
            .clone()
            .or_else(|| var("AWS_ROLE_SESSION_NAME"))
            .unwrap_or(session_name);
        let identity = format!("wif|{file}|{arn}|{session_name}");
        let fetch = Fetch::WebIdentity {
            token: TokenFrom::File(file),
            arn,
            session_name,
            sts: sts_of()?,
        };
        return Ok((None, Some(fetch), identity));
    }
    let container = var("AWS_CONTAINER_CREDENTIALS_FULL_URI").or_else(|| {
        var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").map(|p| format!("http://169.254.170.2{p}"))
    });
    if let Some(uri) = container {
        let auth = var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
            .map(TokenFrom::File)
            .or_else(|| var("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(TokenFrom::Inline));
        let fetch = Fetch::Container {
            uri: http::Uri::try_from(uri.as_str())
                .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_*_URI `{uri}`: {e}"))?,
            auth,
        };
        return Ok((None, Some(fetch), format!("c|{uri}")));
    }
    if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("no AWS credentials: set aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), aws_profile_name, aws_role_name, aws_web_identity_token, or a Bedrock API key (api_key or AWS_BEARER_TOKEN_BEDROCK); the instance metadata service is disabled".into());
    }
    let endpoint = var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| "http://169.254.169.254".into())
        .trim_end_matches('/')
        .to_owned();
    Ok((
        None,
        Some(Fetch::Imds {
            endpoint: endpoint.clone(),
        }),
        format!("i|{endpoint}"),
    ))
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

    fn settings() -> AwsSettings {
        AwsSettings {
            region: "us-east-1".into(),
            ..AwsSettings::default()
        }
    }

    #[test]
    fn the_default_chain_is_walked_in_order() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let kind = |aws: &AwsSettings, e: &dyn Fn(&str) -> Option<String>| {
            let (fixed, fetch, _) = resolve(aws, e).unwrap();
            match (fixed, fetch) {
                (Some(_), None) => "static",
                (None, Some(Fetch::AssumeRole { .. })) => "role",
                (None, Some(Fetch::WebIdentity { .. })) => "web-identity",
                (None, Some(Fetch::Container { .. })) => "container",
                (None, Some(Fetch::Imds { .. })) => "imds",
                _ => "?",
            }
        };
        let mut keys = settings();
        keys.access_key_id = Some("AKID".into());
        keys.secret_access_key = Some(dragoman_config::Secret::new("s".into()));
        assert_eq!(kind(&keys, &env(&[])), "static");
        let mut role = keys.clone();
        role.role_arn = Some("arn:aws:iam::1:role/r".into());
        assert_eq!(kind(&role, &env(&[])), "role");
        let mut wi = settings();
        wi.role_arn = Some("arn:aws:iam::1:role/r".into());
        wi.web_identity_token = Some(dragoman_config::Secret::new("jwt".into()));
        assert_eq!(kind(&wi, &env(&[])), "web-identity");
        let eks = env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]);
        assert_eq!(kind(&settings(), &eks), "web-identity");
        let ecs = env(&[(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/x",
        )]);
        assert_eq!(kind(&settings(), &ecs), "container");
        assert_eq!(kind(&settings(), &env(&[])), "imds");
        let off = env(&[("AWS_EC2_METADATA_DISABLED", "true")]);
        assert!(
            resolve(&settings(), &off)
                .err()
                .unwrap_or_default()
                .contains("no AWS credentials")
        );
        // A role with nothing to assume it with is a start error, not an IMDS call.
        let mut bare_role = settings();
        bare_role.role_arn = Some("arn:aws:iam::1:role/r".into());
        assert!(resolve(&bare_role, &env(&[])).is_err());
    }

    #[test]
    fn answers_are_read_by_tag_and_expiry() {
        let x = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken></Credentials></AssumeRoleResult></AssumeRoleResponse>";
        assert_eq!(xml_text(x, "AccessKeyId"), Some("ASIA1"));
        assert_eq!(xml_text(x, "Expiration"), None);
        let now = Instant::now();
        let (c, exp) = sts_keys(x, now).unwrap();
        assert_eq!(c.session_token(), Some("t"));
        assert_eq!(exp, now + Duration::from_secs(ROLE_SECONDS));
        // An expiry already past (clock skew) still leaves the shortest STS lifetime.
        let (_, past) = json_keys(
            r#"{"AccessKeyId":"A","SecretAccessKey":"s","Expiration":"2001-01-01T00:00:00Z"}"#,
            now,
        )
        .unwrap();
        assert_eq!(past, now + MIN_LIFETIME);
        let j = r#"{"AccessKeyId":"ASIA2","SecretAccessKey":"s","Token":"t2","Expiration":"2999-01-01T00:00:00Z"}"#;
        let (c, exp) = json_keys(j, now).unwrap();
        assert_eq!(c.access_key_id(), "ASIA2");
        assert!(exp > now + Duration::from_secs(86_400));
        assert!(json_keys(r#"{"AccessKeyId":"x"}"#, now).is_err());
    }
}
