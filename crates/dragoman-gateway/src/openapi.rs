//! `GET /openapi.json`: the management API (keys, teams, users, spend, health, models) described
//! by the same table that routes it, so a route cannot exist without its description or the
//! other way round.
//!
//! The handlers read their bodies as loose JSON (LiteLLM's clients send nulls, single values for
//! lists and fields dragoman names back as unsupported), so the schemas here are the contract
//! written down: what a handler takes and what it answers, kept beside the types it stores.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Gateway;
use crate::tenancy::api as t;
use crate::tenancy::docs::{KeyDoc, Limits, Member, TeamDoc, UserDoc};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dragoman management API",
        description = "LiteLLM's key, team, user and spend endpoints, plus health and models. \
            Authenticate with `Authorization: Bearer <master key>`; a virtual key may read its own \
            `/key/info` and list the models it may call. The admin UI (`/ui`) calls these same \
            endpoints; its two read-only views are `/ui/api/deployments` and `/ui/api/config`.",
        license(name = "Apache-2.0"),
    ),
    // Referenced by `Failures`, which (as a response set) does not register what it names.
    components(schemas(ApiError, ApiErrorBody)),
    modifiers(&Security),
    security(("bearer" = []), ("x-api-key" = [])),
    tags(
        (name = "keys", description = "Virtual keys: create, change, block, regenerate, delete."),
        (name = "teams", description = "Teams: their keys share the team's limits and budget."),
        (name = "users", description = "Users: their keys share the user's limits and budget."),
        (name = "spend", description = "Usage records and totals from the usage store."),
        (name = "health", description = "Liveness, readiness and deployment probes."),
        (name = "models", description = "Model groups and aliases a caller may call."),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "x-api-key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

/// The management routes and their description, built from one list.
fn management() -> OpenApiRouter<Arc<Gateway>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(t::key_generate))
        .routes(routes!(t::key_update))
        .routes(routes!(t::key_delete))
        .routes(routes!(t::key_info))
        .routes(routes!(t::key_list))
        .routes(routes!(t::key_regenerate))
        .routes(routes!(t::key_regenerate_path))
        .routes(routes!(t::key_block))
        .routes(routes!(t::key_unblock))
        .routes(routes!(t::team_new))
        .routes(routes!(t::team_update))
        .routes(routes!(t::team_delete))
        .routes(routes!(t::team_info))
        .routes(routes!(t::team_list))
        .routes(routes!(t::team_member_add))
        .routes(routes!(t::team_member_delete))
        .routes(routes!(t::user_new))
        .routes(routes!(t::user_update))
        .routes(routes!(t::user_delete))
        .routes(routes!(t::user_info))
        .routes(routes!(t::user_list))
        .routes(routes!(crate::spend::logs))
        .routes(routes!(crate::spend::summary))
        .routes(routes!(crate::spend::metrics))
        .routes(routes!(crate::routes::live))
        .routes(routes!(crate::routes::liveness))
        .routes(routes!(crate::routes::ready))
        .routes(routes!(crate::routes::health))
        .routes(routes!(crate::routes::models))
        .routes(routes!(crate::routes::models_v1))
        .routes(routes!(crate::ui::deployments))
        .routes(routes!(crate::ui::config))
}

/// The management router with `/openapi.json` beside it; the spec is rendered once.
pub fn router() -> Router<Arc<Gateway>> {
    let (router, spec) = management().split_for_parts();
    // Rendered once; each answer shares the bytes.
    let body = axum::body::Bytes::from(spec.to_json().unwrap_or_else(|e| {
        format!("{{\"error\": \"the OpenAPI document failed to render: {e}\"}}")
    }));
    router.route(
        "/openapi.json",
        get(move || {
            let body = body.clone();
            async move { json_text(body) }
        }),
    )
}

fn json_text(body: axum::body::Bytes) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The spec itself, for tests and `dragoman openapi`-style tooling.
pub fn spec() -> utoipa::openapi::OpenApi {
    management().into_openapi()
}

// ---------------------------------------------------------------------------------------------
// Schemas: what the handlers take and answer. Only serialised (into the spec), never built.

/// LiteLLM's error envelope, which every management endpoint answers with.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    pub error: ApiErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ApiErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// The refusals every management endpoint may answer.
#[derive(IntoResponses)]
pub enum Failures {
    /// A field is missing or malformed; the message names it.
    #[response(status = 400)]
    BadRequest(ApiError),
    /// No master key (or a virtual key reading what is not its own).
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// The key, team or user named does not exist.
    #[response(status = 404)]
    NotFound(ApiError),
}

/// Fields a key takes when it is made or changed.
#[derive(Serialize, ToSchema)]
pub struct KeyFields {
    pub key_alias: Option<String>,
    /// Model groups, aliases or wildcards (`gpt-*`) the key may call; empty or absent: all its
    /// team allows.
    pub models: Option<Vec<String>>,
    /// Must exist (`/team/new`).
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub blocked: Option<bool>,
    /// How long the key lives: `30s`, `15m`, `12h`, `30d`, `4w`, `1mo`; `null` never expires.
    #[schema(pattern = r"^[0-9]+(s|m|h|d|w|mo)$")]
    pub duration: Option<String>,
    #[serde(flatten)]
    pub limits: Limits,
}

#[derive(Serialize, ToSchema)]
pub struct KeyGenerateRequest {
    /// A custom key (`sk-`, at least 12 characters); absent: a random one.
    pub key: Option<String>,
    #[serde(flatten)]
    pub fields: KeyFields,
}

#[derive(Serialize, ToSchema)]
pub struct KeyUpdateRequest {
    /// The key, or its token.
    #[schema(min_length = 1)]
    pub key: String,
    #[serde(flatten)]
    pub fields: KeyFields,
}

#[derive(Serialize, ToSchema)]
pub struct KeyRegenerateRequest {
    /// The key, or its token (the path names it on `/key/{key}/regenerate`).
    pub key: Option<String>,
    /// A custom new key; absent: a random one.
    pub new_key: Option<String>,
    #[serde(flatten)]
    pub fields: KeyFields,
}

#[derive(Serialize, ToSchema)]
pub struct KeyNamed {
    /// The key, or its token.
    #[schema(min_length = 1)]
    pub key: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyDeleteRequest {
    /// Keys or tokens.
    pub keys: Option<Vec<String>>,
    pub key_aliases: Option<Vec<String>>,
}

/// A key as the API shows it: never the key itself (only `token`, its SHA-256).
#[derive(Serialize, ToSchema)]
pub struct KeyInfo {
    #[serde(flatten)]
    pub doc: KeyDoc,
    #[serde(flatten)]
    pub money: Money,
    pub expires: Option<String>,
    pub updated_at: String,
    /// Body fields dragoman did not apply.
    pub unsupported_fields: Option<Vec<String>>,
}

/// Spend and budget fields every key, team and user shows.
#[derive(Serialize, ToSchema)]
pub struct Money {
    /// US dollars this budget period.
    pub spend: f64,
    /// Dollars held by requests still running.
    pub reserved_spend: f64,
    pub budget_reset_at: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct KeyGenerated {
    /// The new key: shown this once.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

#[derive(Serialize, ToSchema)]
pub struct KeyInfoResponse {
    pub key: String,
    pub info: KeyInfo,
}

#[derive(Serialize, ToSchema)]
pub struct KeyListResponse {
    /// Tokens, or whole keys with `return_full_object=true`.
    pub keys: Vec<KeyListItem>,
    pub total_count: u64,
    pub current_page: u64,
    pub total_pages: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum KeyListItem {
    Token(String),
    Key(Box<KeyInfo>),
}

#[derive(Serialize, ToSchema)]
pub struct KeysDeleted {
    /// The tokens of the deleted keys.
    pub deleted_keys: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamNewRequest {
    /// Absent: one is made.
    pub team_id: Option<String>,
    #[serde(flatten)]
    pub fields: TeamFields,
}

#[derive(Serialize, ToSchema)]
pub struct TeamUpdateRequest {
    #[schema(min_length = 1)]
    pub team_id: String,
    #[serde(flatten)]
    pub fields: TeamFields,
}

#[derive(Serialize, ToSchema)]
pub struct TeamFields {
    pub team_alias: Option<String>,
    pub models: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub blocked: Option<bool>,
    pub members_with_roles: Option<Vec<Member>>,
    #[serde(flatten)]
    pub limits: Limits,
}

#[derive(Serialize, ToSchema)]
pub struct TeamInfo {
    #[serde(flatten)]
    pub doc: TeamDoc,
    #[serde(flatten)]
    pub money: Money,
    pub unsupported_fields: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamIds {
    #[schema(min_items = 1)]
    pub team_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamsDeleted {
    pub deleted_teams: Vec<TeamInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct TeamInfoResponse {
    pub team_id: String,
    pub team_info: TeamInfo,
    pub keys: Vec<KeyInfo>,
    pub team_memberships: Vec<Member>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberAddRequest {
    #[schema(min_length = 1)]
    pub team_id: String,
    /// One member, or a list; each names a `user_id` or a `user_email`.
    #[schema(min_items = 1)]
    pub member: Vec<Member>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberDeleteRequest {
    #[schema(min_length = 1)]
    pub team_id: String,
    /// `user_id` or `user_email` names the member.
    pub user_id: Option<String>,
    pub user_email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserNewRequest {
    /// Absent: one is made.
    pub user_id: Option<String>,
    /// Unless `false`, the user gets a key, shown in the answer.
    pub auto_create_key: Option<bool>,
    /// For the key made.
    pub key_alias: Option<String>,
    /// For the key made.
    #[schema(pattern = r"^[0-9]+(s|m|h|d|w|mo)$")]
    pub duration: Option<String>,
    #[serde(flatten)]
    pub fields: UserFields,
}

#[derive(Serialize, ToSchema)]
pub struct UserUpdateRequest {
    #[schema(min_length = 1)]
    pub user_id: String,
    #[serde(flatten)]
    pub fields: UserFields,
}

#[derive(Serialize, ToSchema)]
pub struct UserFields {
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Option<String>,
    pub models: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub teams: Option<Vec<String>>,
    #[serde(flatten)]
    pub limits: Limits,
}

#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    #[serde(flatten)]
    pub doc: UserDoc,
    #[serde(flatten)]
    pub money: Money,
    /// The key `/user/new` made: shown this once.
    pub key: Option<String>,
    pub token: Option<String>,
    pub unsupported_fields: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct UserIds {
    #[schema(min_items = 1)]
    pub user_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersDeleted {
    pub deleted_users: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserInfoResponse {
    pub user_id: String,
    pub user_info: UserInfo,
    pub keys: Vec<KeyInfo>,
    pub teams: Vec<TeamInfo>,
}

#[derive(Serialize, ToSchema)]
pub struct UserListResponse {
    pub users: Vec<UserInfo>,
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub total_pages: u64,
}

/// Tokens by bucket: every count dragoman bills.
#[derive(Serialize, ToSchema)]
pub struct UsageBuckets {
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub cache_write_5m: Option<u64>,
    pub cache_write_1h: Option<u64>,
    pub output: u64,
    pub reasoning: u64,
    pub web_search_requests: Option<u64>,
}

/// One request's usage record.
#[derive(Serialize, ToSchema)]
pub struct SpendLog {
    pub request_id: String,
    pub started_at_ms: i64,
    pub principal: String,
    pub model: String,
    pub deployment: Option<String>,
    pub attempts: u32,
    pub attempted: Vec<String>,
    pub provider_model: Option<String>,
    pub client_dialect: String,
    pub upstream_dialect: Option<String>,
    pub stream: bool,
    /// `ok`, `client_error`, `upstream_error`, `cancelled`, …
    pub outcome: String,
    pub status: u16,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub usage: UsageBuckets,
    /// The key's lasting id (never the key).
    pub api_key: Option<String>,
    pub key_alias: Option<String>,
    pub team_id: Option<String>,
    pub user_id: Option<String>,
    pub end_user: Option<String>,
    pub usage_estimated: bool,
    pub cost_nanos: Option<i64>,
    pub cost_usd: Option<f64>,
    /// `True` or `False`, as LiteLLM writes it.
    pub cache_hit: String,
    pub saved_cost_usd: Option<f64>,
    /// What translation dropped or approximated (`path: why`).
    pub dropped_fields: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SpendSummaryUsage {
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// Totals of one model, key, team, user or UTC day.
#[derive(Serialize, ToSchema)]
pub struct SpendSummaryRow {
    pub group: String,
    pub key: String,
    pub requests: u64,
    pub usage: SpendSummaryUsage,
    pub cost_nanos: i64,
    pub cost_usd: Option<f64>,
    /// Requests whose model has no known price.
    pub unknown_cost_requests: u64,
}

/// One deployment as `/ui/api/deployments` shows it.
#[derive(Serialize, ToSchema)]
pub struct DeploymentState {
    pub id: String,
    pub model_name: String,
    pub provider: String,
    pub model: String,
    pub api_base: String,
    pub dialect: String,
    pub cooling_down: bool,
    pub latency_estimate_ms: f64,
    pub in_flight: u32,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub max_parallel_requests: Option<u32>,
    pub weight: Option<f64>,
    pub order: Option<u32>,
    /// USD per million tokens; `null` when the model's price is not known.
    #[schema(value_type = Option<Object>)]
    pub price_per_million: Option<Value>,
    /// The last background health probe, when background checks run.
    #[schema(value_type = Option<Object>)]
    pub last_probe: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Deployments {
    pub deployments: Vec<DeploymentState>,
}

/// `/health/readiness`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    /// Deployments configured.
    pub models: u64,
}

/// One deployment's probe.
#[derive(Serialize, ToSchema)]
pub struct Probe {
    pub model_name: String,
    pub model: String,
    pub api_base: Option<String>,
    pub deployment: String,
    pub latency_ms: Option<u64>,
    pub error: Option<String>,
    /// Why it was not probed (a wildcard deployment has no one model to ask for).
    pub skipped: Option<String>,
}

/// `/health`: every deployment probed.
#[derive(Serialize, ToSchema)]
pub struct HealthReport {
    pub healthy_count: u64,
    pub unhealthy_count: u64,
    pub healthy_endpoints: Vec<Probe>,
    pub unhealthy_endpoints: Vec<Probe>,
}

#[derive(Serialize, ToSchema)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

/// OpenAI's model list; with an `anthropic-version` header, Anthropic's
/// (`{data: [{type, id, display_name, created_at}], has_more, first_id, last_id}`).
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_renders_and_names_every_schema_it_references() {
        let spec = serde_json::to_value(spec()).expect("spec serialises");
        let text = spec.to_string();
        let schemas = spec["components"]["schemas"]
            .as_object()
            .expect("components.schemas");
        for part in text.split("\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or_default();
            assert!(
                schemas.contains_key(name),
                "{name} is referenced, not defined"
            );
        }
        assert!(spec["paths"]["/key/generate"]["post"].is_object());
    }
}
