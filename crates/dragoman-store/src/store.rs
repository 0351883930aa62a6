//! The store: one handle over SQLite (the embedded default) or PostgreSQL, so the gateway and
//! the spend API never care which one the operator chose.
//!
//! Statements are built at run time (no compile-time checked macros) and written once for both
//! backends wherever the SQL agrees. PostgreSQL goes through sqlx; SQLite through rusqlite on a
//! thread of its own (see `sqlite.rs`), because sqlx's SQLite driver cost ~55 µs of CPU a record.

use std::str::FromStr;
use std::time::Duration;

use dragoman_accounting::{Outcome, Owner, UsageRecord};
use dragoman_model::{Dialect, Usage};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, PgPool};

use crate::error::{StoreError, redact_url};
use crate::query::{GroupBy, LogQuery, SummaryRow};
use crate::sqlite::Sqlite;

pub(crate) const SQLITE: &str = "SQLite";
const POSTGRES: &str = "PostgreSQL";

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: u32 = 5;

/// PostgreSQL only (SQLite pays no round trip per statement). 34 columns a row: 40 rows keep a
/// statement at 1360 parameters, far under PostgreSQL's 65535, while still cutting round trips
/// 40-fold.
const ROWS_PER_STATEMENT: usize = 40;

const COLUMNS: [&str; 34] = [
    "request_id",
    "started_at_ms",
    "principal",
    "client_dialect",
    "upstream_dialect",
    "model",
    "deployment",
    "provider_model",
    "stream",
    "outcome",
    "status",
    "latency_ms",
    "ttft_ms",
    "input_uncached",
    "cache_read",
    "cache_write",
    "cache_write_5m",
    "cache_write_1h",
    "output",
    "reasoning",
    "web_search_requests",
    "web_fetch_requests",
    "usage_estimated",
    "cost_nanos",
    "attempts",
    "attempted",
    "api_key",
    "key_alias",
    "team_id",
    "user_id",
    "end_user",
    "cache_hit",
    "saved_cost_nanos",
    "dropped",
];

/// A key, team or user as the gateway keeps it: its fields are the gateway's business (JSON
/// in `body`); the store keeps them and says when each changed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Doc {
    /// `key`, `team` or `user`.
    pub kind: String,
    /// A key's SHA-256 (hex), a team's or a user's id.
    pub id: String,
    pub body: String,
    /// Unix milliseconds of the last change.
    pub updated_ms: i64,
    /// A tombstone: deleted at `updated_ms`.
    pub deleted: bool,
}

/// A connected, migrated usage store. Cloning is cheap (the pool, or the SQLite thread's
/// queue, is shared); the SQLite thread ends with the last clone or at [`Store::close`].
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(Sqlite),
    Postgres(PgPool),
}

/// A bind value of a dynamically assembled statement.
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl Store {
    /// Opens `sqlite://PATH` (created if missing, WAL, synchronous=NORMAL), `sqlite::memory:`,
    /// or `postgres://…` / `postgresql://…`, and applies the embedded migrations.
    ///
    /// A PostgreSQL URL may carry `?options=-csearch_path%3DNAME` to keep the tables in a
    /// schema; [`Store::connect_with_schema`] does the same and creates the schema.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store {
                backend: Backend::Sqlite(Sqlite::connect(url).await?),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = pg_options(url)?;
            connect_postgres(options, url).await
        } else {
            Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: "expected sqlite://PATH, sqlite::memory:, postgres://… or postgresql://…"
                    .to_owned(),
            })
        }
    }

    /// Connects to PostgreSQL with every table in `schema` (created if missing): what lets
    /// several gateways, or parallel test runs, share one database. `schema` must be a plain
    /// lower-case identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Store, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::InvalidUrl {
                url: redact_url(url),
                reason: "a schema can only be chosen for a PostgreSQL URL".to_owned(),
            });
        }
        if !is_plain_identifier(schema) {
            return Err(StoreError::InvalidArgument {
                backend: POSTGRES,
                reason: format!(
                    "schema name `{schema}` is not a plain lower-case identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
                ),
            });
        }
        let options = pg_options(url)?;
        let connect_error = |source: sqlx::Error| StoreError::Connect {
            backend: POSTGRES,
            url: redact_url(url),
            source: source.into(),
        };
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(connect_error)?;
        // The name was checked to be a plain identifier above, so splicing it is safe.
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&mut conn)
        .await
        .map_err(|source| pg_error("creating the schema", source))?;
        // Closing politely is a nicety; the schema exists either way.
        let _ = conn.close().await;
        connect_postgres(options.options([("search_path", schema)]), url).await
    }

    /// "SQLite" or "PostgreSQL", for logs and health output.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => SQLITE,
            Backend::Postgres(_) => POSTGRES,
        }
    }

    /// Closes the pool, waiting for connections in use to come back (SQLite: lets the queued
    /// work finish, then closes the connection and ends its thread).
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.close().await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Stores `records` in one transaction. A record whose `request_id` is already stored is
    /// skipped, so a batch retried after an ambiguous failure never counts twice.
    pub async fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let pool = match &self.backend {
            Backend::Sqlite(sqlite) => return sqlite.insert_batch(records).await,
            Backend::Postgres(pool) => pool,
        };
        let fail = |source: sqlx::Error| StoreError::Query {
            backend: POSTGRES,
            operation: "inserting usage records",
            source: source.into(),
        };
        let mut tx = pool.begin().await.map_err(fail)?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(AssertSqlSafe(insert_sql(chunk.len())));
            for record in chunk {
                let p = Params::of(record);
                query = query
                    .bind(p.request_id)
                    .bind(p.started_at_ms)
                    .bind(p.principal)
                    .bind(p.client_dialect)
                    .bind(p.upstream_dialect)
                    .bind(p.model)
                    .bind(p.deployment)
                    .bind(p.provider_model)
                    .bind(p.stream)
                    .bind(p.outcome)
                    .bind(p.status)
                    .bind(p.latency_ms)
                    .bind(p.ttft_ms)
                    .bind(p.input_uncached)
                    .bind(p.cache_read)
                    .bind(p.cache_write)
                    .bind(p.cache_write_5m)
                    .bind(p.cache_write_1h)
                    .bind(p.output)
                    .bind(p.reasoning)
                    .bind(p.web_search_requests)
                    .bind(p.web_fetch_requests)
                    .bind(p.usage_estimated)
                    .bind(p.cost_nanos)
                    .bind(p.attempts)
                    .bind(p.attempted)
                    .bind(p.api_key)
                    .bind(p.key_alias)
                    .bind(p.team_id)
                    .bind(p.user_id)
                    .bind(p.end_user)
                    .bind(p.cache_hit)
                    .bind(p.saved_cost_nanos)
                    .bind(p.dropped);
            }
            query.execute(&mut *tx).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }

    /// Records matching `q`, newest first (ties broken by `request_id`, descending).
    pub async fn logs(&self, q: &LogQuery) -> Result<Vec<UsageRecord>, StoreError> {
        let (sql, args) = logs_sql(q);
        let rows = match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.logs(sql, args).await?,
            Backend::Postgres(pool) => {
                let mut query = sqlx::query_as::<_, RawRecord>(AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Text(s) => query.bind(s),
                        Arg::Int(i) => query.bind(i),
                    };
                }
                query
                    .fetch_all(pool)
                    .await
                    .map_err(|source| pg_error("listing usage records", source))?
            }
        };
        let backend = self.backend_name();
        rows.into_iter().map(|r| r.into_record(backend)).collect()
    }

    /// Totals per model, principal or UTC day over `[since_ms, until_ms)`, ordered by key.
    pub async fn summary(
        &self,
        group_by: GroupBy,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        let postgres = matches!(self.backend, Backend::Postgres(_));
        let (sql, args) = summary_sql(postgres, group_by, since_ms, until_ms);
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.summary(sql, args).await,
            Backend::Postgres(pool) => {
                let mut query = sqlx::query_as::<_, SummaryRow>(AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Text(s) => query.bind(s),
                        Arg::Int(i) => query.bind(i),
                    };
                }
                query
                    .fetch_all(pool)
                    .await
                    .map_err(|source| pg_error("summarising usage", source))
            }
        }
    }

    /// Writes a key, team or user document (insert or replace by kind and id).
    pub async fn put_doc(&self, doc: &Doc) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO tenancy (kind, id, body, updated_ms, deleted) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, id) DO UPDATE SET \
             body = excluded.body, updated_ms = excluded.updated_ms, deleted = excluded.deleted";
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.put_doc(SQL, doc.clone()).await,
            Backend::Postgres(pool) => sqlx::query(SQL)
                .bind(&doc.kind)
                .bind(&doc.id)
                .bind(&doc.body)
                .bind(doc.updated_ms)
                .bind(doc.deleted)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|source| pg_error("writing a tenancy document", source)),
        }
    }

    /// Every document changed at or after `since_ms` (tombstones included), oldest change
    /// first: a full load with 0, a refresh with the last poll's time less a margin.
    pub async fn docs_since(&self, since_ms: i64) -> Result<Vec<Doc>, StoreError> {
        const SQL: &str = "SELECT kind, id, body, updated_ms, deleted FROM tenancy \
             WHERE updated_ms >= $1 ORDER BY updated_ms, kind, id";
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.docs(SQL, since_ms).await,
            Backend::Postgres(pool) => sqlx::query_as::<_, Doc>(SQL)
                .bind(since_ms)
                .fetch_all(pool)
                .await
                .map_err(|source| pg_error("reading tenancy documents", source)),
        }
    }

    /// The known cost, in nano-dollars, of the requests since `since_ms` matching every
    /// filter: one key (by hash), team or user, and optionally a model group.
    pub async fn spend(
        &self,
        filters: &[(GroupBy, &str)],
        since_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut sql = "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) FROM usage_records \
             WHERE started_at_ms >= $1"
            .to_owned();
        let mut args = vec![Arg::Int(since_ms)];
        for (by, value) in filters {
            let column = match by {
                GroupBy::Key => "api_key",
                GroupBy::Team => "team_id",
                GroupBy::User => "user_id",
                GroupBy::EndUser => "end_user",
                GroupBy::Model => "model",
                GroupBy::Principal => "principal",
                GroupBy::Day => {
                    return Err(StoreError::InvalidArgument {
                        backend: self.backend_name(),
                        reason:
                            "spend is filtered by key, team, user, end user, model or principal"
                                .to_owned(),
                    });
                }
            };
            args.push(Arg::Text((*value).to_owned()));
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.scalar(sql, args).await,
            Backend::Postgres(pool) => {
                let mut query = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
                for arg in args {
                    query = match arg {
                        Arg::Text(s) => query.bind(s),
                        Arg::Int(i) => query.bind(i),
                    };
                }
                query
                    .fetch_one(pool)
                    .await
                    .map_err(|source| pg_error("summing spend", source))
            }
        }
    }

    /// The number of stored records.
    pub async fn count(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.count().await,
            Backend::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM usage_records")
                    .fetch_one(pool)
                    .await
                    .map_err(|source| pg_error("counting usage records", source))
            }
        }
    }

    /// Round-trips a trivial statement: the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.ping().await,
            Backend::Postgres(pool) => sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|source| pg_error("ping", source)),
        }
    }
}

pub(crate) fn pg_error(operation: &'static str, source: sqlx::Error) -> StoreError {
    StoreError::Query {
        backend: POSTGRES,
        operation,
        source: source.into(),
    }
}

fn pg_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
        url: redact_url(url),
        reason: e.to_string(),
    })
}

async fn connect_postgres(options: PgConnectOptions, url: &str) -> Result<Store, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            backend: POSTGRES,
            url: redact_url(url),
            source: source.into(),
        })?;
    sqlx::migrate!("migrations/postgres")
        .run(&pool)
        .await
        .map_err(|source| StoreError::Migrate {
            backend: POSTGRES,
            source: source.into(),
        })?;
    Ok(Store {
        backend: Backend::Postgres(pool),
    })
}

fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && s.len() <= 63
}

pub(crate) fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO usage_records ({}) VALUES ", COLUMNS.join(", "));
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..COLUMNS.len() {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
    sql
}

/// Appends `AND …` clauses for the filters that are set, numbering placeholders after those
/// already in `args`.
fn push_range(sql: &mut String, args: &mut Vec<Arg>, since_ms: Option<i64>, until_ms: Option<i64>) {
    if let Some(since) = since_ms {
        args.push(Arg::Int(since));
        sql.push_str(&format!(" AND started_at_ms >= ${}", args.len()));
    }
    if let Some(until) = until_ms {
        args.push(Arg::Int(until));
        sql.push_str(&format!(" AND started_at_ms < ${}", args.len()));
    }
}

pub(crate) fn logs_sql(q: &LogQuery) -> (String, Vec<Arg>) {
    let mut sql = format!(
        "SELECT {} FROM usage_records WHERE 1 = 1",
        COLUMNS.join(", ")
    );
    let mut args = Vec::new();
    if let Some(model) = &q.model {
        args.push(Arg::Text(model.clone()));
        sql.push_str(&format!(" AND model = ${}", args.len()));
    }
    for (column, value) in [
        ("principal", &q.principal),
        ("api_key", &q.api_key),
        ("team_id", &q.team_id),
        ("user_id", &q.user_id),
        ("end_user", &q.end_user),
    ] {
        if let Some(v) = value {
            args.push(Arg::Text(v.clone()));
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
    }
    push_range(&mut sql, &mut args, q.since_ms, q.until_ms);
    args.push(Arg::Int(q.effective_limit()));
    sql.push_str(&format!(
        " ORDER BY started_at_ms DESC, request_id DESC LIMIT ${}",
        args.len()
    ));
    (sql, args)
}

pub(crate) fn summary_sql(
    postgres: bool,
    group_by: GroupBy,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
) -> (String, Vec<Arg>) {
    let key = match (group_by, postgres) {
        (GroupBy::Model, _) => "model",
        (GroupBy::Principal, _) => "principal",
        (GroupBy::Key, _) => "COALESCE(api_key, '')",
        (GroupBy::Team, _) => "COALESCE(team_id, '')",
        (GroupBy::User, _) => "COALESCE(user_id, '')",
        (GroupBy::EndUser, _) => "COALESCE(end_user, '')",
        (GroupBy::Day, false) => "date(started_at_ms / 1000.0, 'unixepoch')",
        (GroupBy::Day, true) => {
            "to_char(to_timestamp(started_at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
    };
    let sum = |col: &str| format!("CAST(COALESCE(SUM({col}), 0) AS BIGINT) AS {col}");
    let mut sql = format!(
        "SELECT {key} AS group_key, COUNT(*) AS requests, {}, {}, {}, {}, {}, {}, \
         CAST(COALESCE(SUM(CASE WHEN cost_nanos IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
         AS unknown_cost_requests FROM usage_records WHERE 1 = 1",
        sum("input_uncached"),
        sum("cache_read"),
        sum("cache_write"),
        sum("output"),
        sum("reasoning"),
        sum("cost_nanos"),
    );
    let mut args = Vec::new();
    push_range(&mut sql, &mut args, since_ms, until_ms);
    // Byte order on both backends, whatever collation the PostgreSQL database defaults to.
    // (PostgreSQL takes no COLLATE on an output column's ordinal or alias, hence the repeat.)
    if postgres {
        sql.push_str(&format!(" GROUP BY {key} ORDER BY {key} COLLATE \"C\""));
    } else {
        sql.push_str(&format!(" GROUP BY {key} ORDER BY {key}"));
    }
    (sql, args)
}

/// A record flattened to the column types both backends store.
pub(crate) struct Params<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) started_at_ms: i64,
    pub(crate) principal: &'a str,
    pub(crate) client_dialect: &'static str,
    pub(crate) upstream_dialect: Option<&'static str>,
    pub(crate) model: &'a str,
    pub(crate) deployment: Option<&'a str>,
    pub(crate) provider_model: Option<&'a str>,
    pub(crate) stream: bool,
    pub(crate) outcome: &'static str,
    pub(crate) status: i32,
    pub(crate) latency_ms: i64,
    pub(crate) ttft_ms: Option<i64>,
    pub(crate) input_uncached: Option<i64>,
    pub(crate) cache_read: Option<i64>,
    pub(crate) cache_write: Option<i64>,
    pub(crate) cache_write_5m: Option<i64>,
    pub(crate) cache_write_1h: Option<i64>,
    pub(crate) output: Option<i64>,
    pub(crate) reasoning: Option<i64>,
    pub(crate) web_search_requests: Option<i64>,
    pub(crate) web_fetch_requests: Option<i64>,
    pub(crate) usage_estimated: bool,
    pub(crate) cost_nanos: Option<i64>,
    pub(crate) attempts: i32,
    pub(crate) attempted: Option<&'a str>,
    pub(crate) api_key: Option<&'a str>,
    pub(crate) key_alias: Option<&'a str>,
    pub(crate) team_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) end_user: Option<&'a str>,
    pub(crate) cache_hit: bool,
    pub(crate) saved_cost_nanos: Option<i64>,
    pub(crate) dropped: Option<&'a str>,
}

/// Counts past `i64::MAX` cannot happen in practice; clamping keeps one absurd record from
/// failing, and so blocking, the whole batch it travels in.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl<'a> Params<'a> {
    pub(crate) fn of(r: &'a UsageRecord) -> Params<'a> {
        let u = &r.usage;
        Params {
            request_id: &r.request_id,
            started_at_ms: r.started_at_ms,
            principal: &r.principal,
            client_dialect: r.client_dialect.as_str(),
            upstream_dialect: r.upstream_dialect.map(Dialect::as_str),
            model: &r.model,
            deployment: r.deployment.as_deref(),
            provider_model: r.provider_model.as_deref(),
            stream: r.stream,
            outcome: r.outcome.as_str(),
            status: i32::from(r.status),
            latency_ms: to_i64(r.latency_ms),
            ttft_ms: r.ttft_ms.map(to_i64),
            input_uncached: u.input_uncached.map(to_i64),
            cache_read: u.cache_read.map(to_i64),
            cache_write: u.cache_write.map(to_i64),
            cache_write_5m: u.cache_write_5m.map(to_i64),
            cache_write_1h: u.cache_write_1h.map(to_i64),
            output: u.output.map(to_i64),
            reasoning: u.reasoning.map(to_i64),
            web_search_requests: u.web_search_requests.map(to_i64),
            web_fetch_requests: u.web_fetch_requests.map(to_i64),
            usage_estimated: r.usage_estimated,
            cost_nanos: r.cost_nanos,
            attempts: i32::try_from(r.attempts).unwrap_or(i32::MAX),
            attempted: r.attempted.as_deref(),
            api_key: r.owner.api_key.as_deref(),
            key_alias: r.owner.key_alias.as_deref(),
            team_id: r.owner.team_id.as_deref(),
            user_id: r.owner.user_id.as_deref(),
            end_user: r.owner.end_user.as_deref(),
            cache_hit: r.cache_hit,
            saved_cost_nanos: r.saved_cost_nanos,
            dropped: r.dropped.as_deref(),
        }
    }
}

/// A row as stored, before its text and integers are checked into the record's types.
#[derive(sqlx::FromRow)]
pub(crate) struct RawRecord {
    pub(crate) request_id: String,
    pub(crate) started_at_ms: i64,
    pub(crate) principal: String,
    pub(crate) client_dialect: String,
    pub(crate) upstream_dialect: Option<String>,
    pub(crate) model: String,
    pub(crate) deployment: Option<String>,
    pub(crate) provider_model: Option<String>,
    pub(crate) stream: bool,
    pub(crate) outcome: String,
    pub(crate) status: i32,
    pub(crate) latency_ms: i64,
    pub(crate) ttft_ms: Option<i64>,
    pub(crate) input_uncached: Option<i64>,
    pub(crate) cache_read: Option<i64>,
    pub(crate) cache_write: Option<i64>,
    pub(crate) cache_write_5m: Option<i64>,
    pub(crate) cache_write_1h: Option<i64>,
    pub(crate) output: Option<i64>,
    pub(crate) reasoning: Option<i64>,
    pub(crate) web_search_requests: Option<i64>,
    pub(crate) web_fetch_requests: Option<i64>,
    pub(crate) usage_estimated: bool,
    pub(crate) cost_nanos: Option<i64>,
    pub(crate) attempts: i32,
    pub(crate) attempted: Option<String>,
    pub(crate) api_key: Option<String>,
    pub(crate) key_alias: Option<String>,
    pub(crate) team_id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) end_user: Option<String>,
    pub(crate) cache_hit: bool,
    pub(crate) saved_cost_nanos: Option<i64>,
    pub(crate) dropped: Option<String>,
}

impl RawRecord {
    pub(crate) fn into_record(self, backend: &'static str) -> Result<UsageRecord, StoreError> {
        let request_id = self.request_id;
        let bad = |reason: String| StoreError::Malformed {
            backend,
            request_id: request_id.clone(),
            reason,
        };
        let dialect = |column: &str, s: &str| {
            Dialect::from_str(s).map_err(|e| bad(format!("column {column}: {e}")))
        };
        let count = |column: &str, v: Option<i64>| {
            v.map(|v| {
                u64::try_from(v).map_err(|_| bad(format!("column {column}: negative value {v}")))
            })
            .transpose()
        };
        let client_dialect = dialect("client_dialect", &self.client_dialect)?;
        let upstream_dialect = self
            .upstream_dialect
            .as_deref()
            .map(|s| dialect("upstream_dialect", s))
            .transpose()?;
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| bad(format!("column outcome: unknown value `{}`", self.outcome)))?;
        let status = u16::try_from(self.status).map_err(|_| {
            bad(format!(
                "column status: {} is not an HTTP status",
                self.status
            ))
        })?;
        let latency_ms = count("latency_ms", Some(self.latency_ms))?.unwrap_or(0);
        let usage = Usage {
            input_uncached: count("input_uncached", self.input_uncached)?,
            cache_read: count("cache_read", self.cache_read)?,
            cache_write: count("cache_write", self.cache_write)?,
            cache_write_5m: count("cache_write_5m", self.cache_write_5m)?,
            cache_write_1h: count("cache_write_1h", self.cache_write_1h)?,
            output: count("output", self.output)?,
            reasoning: count("reasoning", self.reasoning)?,
            web_search_requests: count("web_search_requests", self.web_search_requests)?,
            web_fetch_requests: count("web_fetch_requests", self.web_fetch_requests)?,
        };
        let ttft_ms = count("ttft_ms", self.ttft_ms)?;
        Ok(UsageRecord {
            request_id,
            started_at_ms: self.started_at_ms,
            principal: self.principal,
            client_dialect,
            upstream_dialect,
            model: self.model,
            deployment: self.deployment,
            provider_model: self.provider_model,
            stream: self.stream,
            outcome,
            status,
            latency_ms,
            ttft_ms,
            usage,
            usage_estimated: self.usage_estimated,
            cost_nanos: self.cost_nanos,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            attempted: self.attempted,
            owner: Owner {
                api_key: self.api_key,
                key_alias: self.key_alias,
                team_id: self.team_id,
                user_id: self.user_id,
                end_user: self.end_user,
            },
            cache_hit: self.cache_hit,
            saved_cost_nanos: self.saved_cost_nanos,
            dropped: self.dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_every_placeholder() {
        let sql = insert_sql(2);
        assert!(sql.contains("$1, $2"));
        assert!(sql.contains(&format!("${}", 2 * COLUMNS.len())));
        assert!(!sql.contains(&format!("${}", 2 * COLUMNS.len() + 1)));
        assert!(sql.ends_with("ON CONFLICT (request_id) DO NOTHING"));
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(is_plain_identifier("dragoman_t_0af3"));
        assert!(!is_plain_identifier("x; DROP TABLE y"));
        assert!(!is_plain_identifier("Upper"));
        assert!(!is_plain_identifier("1abc"));
        assert!(!is_plain_identifier(""));
    }
}
