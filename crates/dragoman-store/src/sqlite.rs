//! The SQLite backend: one rusqlite connection owned by a thread of its own and fed jobs over a
//! channel, so SQLite's blocking calls never stall the async runtime. Through sqlx a record cost
//! ~55 µs of CPU (a parameter-name lookup on every bind, a hop to a worker thread on every step);
//! here ~10 µs, most of it SQLite writing the random `request_id` index's pages to the WAL.
//!
//! One connection is all SQLite can use for writing anyway, it keeps `sqlite::memory:` a single
//! database, and jobs queue in arrival order, so a reader sees every batch acknowledged before
//! it asked.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use dragoman_accounting::UsageRecord;
use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params_from_iter,
};
use tokio::sync::oneshot;

use crate::error::{Source, StoreError, redact_url};
use crate::query::SummaryRow;
use crate::responses::{
    COUNT_RESPONSES, DELETE_ITEMS_OF, DELETE_RESPONSE, EXPIRED, FIND_ITEM, OVER_BUDGET,
    RawResponse, ResponseRow, SELECT_RESPONSE, UPSERT_ITEM, upsert_response_sql,
};
use crate::store::{Arg, Doc, Params, RawRecord, SQLITE, insert_sql};

/// Long enough to ride out a checkpoint or another process writing, short enough that a wedged
/// database surfaces as an error the writer can retry.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const WAL_AUTOCHECKPOINT_PAGES: i64 = 4000;

/// Every migration in `migrations/sqlite`, in order; the version is the file's number. The
/// first must be safe to apply to a database that already has it (`IF NOT EXISTS`): a
/// database the sqlx-based store made records its migrations elsewhere. Later ones run once,
/// by `user_version`.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../migrations/sqlite/0001_usage_records.sql"),
    ),
    (2, include_str!("../migrations/sqlite/0002_attempts.sql")),
    (3, include_str!("../migrations/sqlite/0003_tenancy.sql")),
    (4, include_str!("../migrations/sqlite/0004_responses.sql")),
    (5, include_str!("../migrations/sqlite/0005_cache_hits.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_dropped_fields.sql"),
    ),
];

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Insert(Vec<UsageRecord>, Reply<()>),
    Logs(String, Vec<Value>, Reply<Vec<RawRecord>>),
    Summary(String, Vec<Value>, Reply<Vec<SummaryRow>>),
    Count(Reply<i64>),
    PutDoc(&'static str, Doc, Reply<()>),
    Docs(&'static str, i64, Reply<Vec<Doc>>),
    Scalar(String, Vec<Value>, Reply<i64>),
    Ping(Reply<()>),
    PutResponses(Vec<ResponseRow>, Reply<()>),
    GetResponse(String, i64, Reply<Option<RawResponse>>),
    FindItem(String, i64, Reply<Option<(String, String, String)>>),
    DeleteResponse(String, Reply<bool>),
    PurgeResponses(i64, Option<i64>, Reply<u64>),
    ResponseCount(Reply<i64>),
    Close(oneshot::Sender<()>),
}

/// The handle a `Store` clones: the connection's thread ends when the last one is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Sqlite {
    jobs: mpsc::Sender<Job>,
}

/// What a `sqlite:` URL names.
#[derive(Debug, PartialEq)]
enum Target {
    Memory,
    File { path: PathBuf, read_only: bool },
}

impl Sqlite {
    /// Opens the database on a new thread, applies the migrations there, and hands back the
    /// queue to it.
    pub(crate) async fn connect(url: &str) -> Result<Sqlite, StoreError> {
        let target = parse_url(url)?;
        let redacted = redact_url(url);
        let (jobs, inbox) = mpsc::channel();
        let (ready, opened) = oneshot::channel();
        let thread_url = redacted.clone();
        std::thread::Builder::new()
            .name("dragoman-sqlite".to_owned())
            .spawn(move || match open(&target, &thread_url) {
                Ok(conn) => {
                    if ready.send(Ok(())).is_ok() {
                        serve(conn, &inbox);
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                }
            })
            .map_err(|e| connect_error(&redacted, e))?;
        opened
            .await
            .map_err(|_| connect_error(&redacted, "the SQLite thread ended while opening"))??;
        Ok(Sqlite { jobs })
    }

    pub(crate) async fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        // The thread outlives this borrow (and this future, if the caller gives up), so it gets
        // its own copy: well under a µs a record.
        let records = records.to_vec();
        self.ask("inserting usage records", |reply| {
            Job::Insert(records, reply)
        })
        .await
    }

    pub(crate) async fn logs(
        &self,
        sql: String,
        args: Vec<Arg>,
    ) -> Result<Vec<RawRecord>, StoreError> {
        let (sql, args) = for_sqlite(sql, args);
        self.ask("listing usage records", |reply| Job::Logs(sql, args, reply))
            .await
    }

    pub(crate) async fn summary(
        &self,
        sql: String,
        args: Vec<Arg>,
    ) -> Result<Vec<SummaryRow>, StoreError> {
        let (sql, args) = for_sqlite(sql, args);
        self.ask("summarising usage", |reply| Job::Summary(sql, args, reply))
            .await
    }

    pub(crate) async fn put_doc(&self, sql: &'static str, doc: Doc) -> Result<(), StoreError> {
        self.ask("writing a tenancy document", |reply| {
            Job::PutDoc(sql, doc, reply)
        })
        .await
    }

    pub(crate) async fn docs(
        &self,
        sql: &'static str,
        since_ms: i64,
    ) -> Result<Vec<Doc>, StoreError> {
        self.ask("reading tenancy documents", |reply| {
            Job::Docs(sql, since_ms, reply)
        })
        .await
    }

    pub(crate) async fn scalar(&self, sql: String, args: Vec<Arg>) -> Result<i64, StoreError> {
        let (sql, args) = for_sqlite(sql, args);
        self.ask("summing spend", |reply| Job::Scalar(sql, args, reply))
            .await
    }

    pub(crate) async fn count(&self) -> Result<i64, StoreError> {
        self.ask("counting usage records", Job::Count).await
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.ask("ping", Job::Ping).await
    }

    pub(crate) async fn put_responses(&self, rows: Vec<ResponseRow>) -> Result<(), StoreError> {
        self.ask("storing responses", |reply| Job::PutResponses(rows, reply))
            .await
    }

    pub(crate) async fn get_response(
        &self,
        id: String,
        now_ms: i64,
    ) -> Result<Option<RawResponse>, StoreError> {
        self.ask("reading a response", |reply| {
            Job::GetResponse(id, now_ms, reply)
        })
        .await
    }

    pub(crate) async fn find_item(
        &self,
        item_id: String,
        now_ms: i64,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        self.ask("finding a response item", |reply| {
            Job::FindItem(item_id, now_ms, reply)
        })
        .await
    }

    pub(crate) async fn delete_response(&self, id: String) -> Result<bool, StoreError> {
        self.ask("deleting a response", |reply| {
            Job::DeleteResponse(id, reply)
        })
        .await
    }

    pub(crate) async fn purge_responses(
        &self,
        now_ms: i64,
        max_bytes: Option<i64>,
    ) -> Result<u64, StoreError> {
        self.ask("purging responses", |reply| {
            Job::PurgeResponses(now_ms, max_bytes, reply)
        })
        .await
    }

    pub(crate) async fn response_count(&self) -> Result<i64, StoreError> {
        self.ask("counting responses", Job::ResponseCount).await
    }

    /// Lets the jobs already queued finish, then closes the connection and ends the thread;
    /// later calls on any clone fail as closed. Closing twice is harmless.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }

    async fn ask<T>(
        &self,
        operation: &'static str,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .map_err(|_| closed_error(operation))?;
        answer.await.map_err(|_| closed_error(operation))?
    }
}

fn connect_error(url: &str, source: impl Into<Source>) -> StoreError {
    StoreError::Connect {
        backend: SQLITE,
        url: url.to_owned(),
        source: source.into(),
    }
}

fn query_error(operation: &'static str, source: rusqlite::Error) -> StoreError {
    StoreError::Query {
        backend: SQLITE,
        operation,
        source: source.into(),
    }
}

fn closed_error(operation: &'static str) -> StoreError {
    StoreError::Query {
        backend: SQLITE,
        operation,
        source: "the store is closed".into(),
    }
}

/// Accepts what sqlx accepted: `sqlite::memory:`, `sqlite://PATH` or `sqlite:PATH` with the
/// path percent-decoded, and `?mode=ro|rw|rwc|memory`. A file is created if missing whatever the
/// mode says, unless read-only, as the store always did.
fn parse_url(url: &str) -> Result<Target, StoreError> {
    let invalid = |reason: String| StoreError::InvalidUrl {
        url: redact_url(url),
        reason,
    };
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| invalid("expected sqlite://PATH or sqlite::memory:".to_owned()))?;
    let (database, params) = match rest.split_once('?') {
        Some((database, params)) => (database, Some(params)),
        None => (rest, None),
    };
    let mut memory = database == ":memory:";
    let mut read_only = false;
    for param in params.into_iter().flat_map(|p| p.split('&')) {
        match param.split_once('=').unwrap_or((param, "")) {
            ("mode", "ro") => read_only = true,
            ("mode", "rw" | "rwc") => {}
            ("mode", "memory") => memory = true,
            ("mode", other) => {
                return Err(invalid(format!(
                    "unknown mode `{other}` (expected ro, rw, rwc or memory)"
                )));
            }
            (key, _) => return Err(invalid(format!("unknown query parameter `{key}`"))),
        }
    }
    if memory {
        return Ok(Target::Memory);
    }
    if database.is_empty() {
        return Err(invalid("no database path".to_owned()));
    }
    let path = percent_decode(database).map_err(invalid)?;
    Ok(Target::File {
        path: PathBuf::from(path),
        read_only,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in path `{s}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("path `{s}` is not UTF-8 once decoded"))
}

fn open(target: &Target, url: &str) -> Result<Connection, StoreError> {
    let mut conn = match target {
        Target::Memory => Connection::open_in_memory().map_err(|e| connect_error(url, e))?,
        Target::File { path, read_only } => {
            let flags = if *read_only {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } else {
                if let Some(parent) = path.parent() {
                    // A fresh install points at a directory that does not exist yet; creating
                    // it here saves the operator a confusing "unable to open database file".
                    if !parent.as_os_str().is_empty() && !parent.exists() {
                        std::fs::create_dir_all(parent).map_err(|e| connect_error(url, e))?;
                    }
                }
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
            };
            // The connection stays on one thread: SQLite's own mutexes would be pure cost.
            let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let conn =
                Connection::open_with_flags(path, flags).map_err(|e| connect_error(url, e))?;
            conn.busy_timeout(BUSY_TIMEOUT)
                .map_err(|e| connect_error(url, e))?;
            if !read_only {
                // WAL lets the spend API read while the writer writes; NORMAL syncs at
                // checkpoints only, which in WAL mode loses at most the last transactions on
                // power loss, never the database.
                conn.pragma_update(None, "journal_mode", "WAL")
                    .map_err(|e| connect_error(url, e))?;
                conn.pragma_update(None, "synchronous", "NORMAL")
                    .map_err(|e| connect_error(url, e))?;
                // Checkpointing (copy back plus fsync) was the largest cost per record at the
                // default 1000 pages; at 4000 (~16 MiB of WAL) a hot index page is copied back
                // once for several commits, and fsyncs are a quarter as many (measured 12 -> 10
                // µs a record).
                conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                    .map_err(|e| connect_error(url, e))?;
            }
            conn
        }
    };
    // Deleted and replaced rows (stored responses above all) are overwritten with zeros rather
    // than left in free space, so a DELETE /v1/responses/{id} really removes the content from
    // the file. Per connection, hence here rather than in a migration.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(|e| connect_error(url, e))?;
    migrate(&mut conn).map_err(|source| StoreError::Migrate {
        backend: SQLITE,
        source: source.into(),
    })?;
    Ok(conn)
}

/// Applies the migrations newer than `PRAGMA user_version` in one transaction, taken for
/// writing up front so two processes opening the same new file apply them once.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let mut version = stored;
    if version == 0 {
        // A database the sqlx-based store made keeps its history there instead.
        let sqlx_made: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master \
             WHERE type = 'table' AND name = '_sqlx_migrations')",
            [],
            |row| row.get(0),
        )?;
        if sqlx_made {
            version = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
                [],
                |row| row.get(0),
            )?;
        }
    }
    for &(number, sql) in MIGRATIONS {
        if number > version {
            tx.execute_batch(sql)?;
            version = number;
        }
    }
    if version != stored {
        tx.pragma_update(None, "user_version", version)?;
    }
    tx.commit()
}

/// The thread's loop: one job at a time until `Close` or until every handle is gone.
fn serve(mut conn: Connection, inbox: &mpsc::Receiver<Job>) {
    let insert = insert_sql(1).replace('$', "?");
    while let Ok(job) = inbox.recv() {
        match job {
            Job::Insert(records, reply) => {
                let result = insert_batch(&mut conn, &insert, &records)
                    .map_err(|e| query_error("inserting usage records", e));
                let _ = reply.send(result);
            }
            Job::Logs(sql, args, reply) => {
                let result = select(&conn, &sql, args, raw_record)
                    .map_err(|e| query_error("listing usage records", e));
                let _ = reply.send(result);
            }
            Job::Summary(sql, args, reply) => {
                let result = select(&conn, &sql, args, summary_row)
                    .map_err(|e| query_error("summarising usage", e));
                let _ = reply.send(result);
            }
            Job::Count(reply) => {
                let result = conn
                    .query_row("SELECT COUNT(*) FROM usage_records", [], |row| row.get(0))
                    .map_err(|e| query_error("counting usage records", e));
                let _ = reply.send(result);
            }
            Job::PutDoc(sql, doc, reply) => {
                let result = conn
                    .prepare_cached(&sql.replace('$', "?"))
                    .and_then(|mut st| {
                        st.execute(rusqlite::params![
                            doc.kind,
                            doc.id,
                            doc.body,
                            doc.updated_ms,
                            doc.deleted
                        ])
                    })
                    .map(|_| ())
                    .map_err(|e| query_error("writing a tenancy document", e));
                let _ = reply.send(result);
            }
            Job::Docs(sql, since_ms, reply) => {
                let result = select(
                    &conn,
                    &sql.replace('$', "?"),
                    vec![Value::Integer(since_ms)],
                    doc_row,
                )
                .map_err(|e| query_error("reading tenancy documents", e));
                let _ = reply.send(result);
            }
            Job::Scalar(sql, args, reply) => {
                let result = conn
                    .prepare_cached(&sql)
                    .and_then(|mut st| st.query_row(params_from_iter(args), |row| row.get(0)))
                    .map_err(|e| query_error("summing spend", e));
                let _ = reply.send(result);
            }
            Job::Ping(reply) => {
                let result = conn
                    .query_row("SELECT 1", [], |_| Ok(()))
                    .map_err(|e| query_error("ping", e));
                let _ = reply.send(result);
            }
            Job::PutResponses(rows, reply) => {
                let result = put_responses(&mut conn, &rows)
                    .map_err(|e| query_error("storing responses", e));
                let _ = reply.send(result);
            }
            Job::GetResponse(id, now_ms, reply) => {
                let result = conn
                    .prepare_cached(&SELECT_RESPONSE.replace('$', "?"))
                    .and_then(|mut st| {
                        st.query_row(rusqlite::params![id, now_ms], raw_response)
                            .optional()
                    })
                    .map_err(|e| query_error("reading a response", e));
                let _ = reply.send(result);
            }
            Job::FindItem(item_id, now_ms, reply) => {
                let result = conn
                    .prepare_cached(&FIND_ITEM.replace('$', "?"))
                    .and_then(|mut st| {
                        st.query_row(rusqlite::params![item_id, now_ms], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })
                        .optional()
                    })
                    .map_err(|e| query_error("finding a response item", e));
                let _ = reply.send(result);
            }
            Job::DeleteResponse(id, reply) => {
                let result = delete_responses(&mut conn, &[id])
                    .map(|n| n > 0)
                    .map_err(|e| query_error("deleting a response", e));
                let _ = reply.send(result);
            }
            Job::PurgeResponses(now_ms, max_bytes, reply) => {
                let result = purge_responses(&mut conn, now_ms, max_bytes)
                    .map_err(|e| query_error("purging responses", e));
                let _ = reply.send(result);
            }
            Job::ResponseCount(reply) => {
                let result = conn
                    .query_row(COUNT_RESPONSES, [], |row| row.get(0))
                    .map_err(|e| query_error("counting responses", e));
                let _ = reply.send(result);
            }
            Job::Close(done) => {
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "closing the SQLite usage store failed");
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// One transaction and one cached single-row statement for the whole batch: binding by index
/// costs nothing per parameter, and the commit is the only sync.
fn insert_batch(conn: &mut Connection, sql: &str, records: &[UsageRecord]) -> rusqlite::Result<()> {
    // Taking the write lock up front: a deferred transaction that later needs it can fail
    // without waiting if another process wrote in between.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(sql)?;
        // Random request ids would send each insert to a random leaf of the key's index; in
        // key order the descents share their path and each leaf is visited once per batch.
        let mut sorted: Vec<&UsageRecord> = records.iter().collect();
        sorted.sort_unstable_by(|a, b| a.request_id.cmp(&b.request_id));
        for record in sorted {
            let p = Params::of(record);
            insert.execute(rusqlite::params![
                p.request_id,
                p.started_at_ms,
                p.principal,
                p.client_dialect,
                p.upstream_dialect,
                p.model,
                p.deployment,
                p.provider_model,
                p.stream,
                p.outcome,
                p.status,
                p.latency_ms,
                p.ttft_ms,
                p.input_uncached,
                p.cache_read,
                p.cache_write,
                p.cache_write_5m,
                p.cache_write_1h,
                p.output,
                p.reasoning,
                p.web_search_requests,
                p.web_fetch_requests,
                p.usage_estimated,
                p.cost_nanos,
                p.attempts,
                p.attempted,
                p.api_key,
                p.key_alias,
                p.team_id,
                p.user_id,
                p.end_user,
                p.cache_hit,
                p.saved_cost_nanos,
                p.dropped,
            ])?;
        }
    }
    tx.commit()
}

/// Row by row in batch order, in one transaction: a replaced response's index rows go before
/// its new ones are written, and a later claim on an item id wins.
fn put_responses(conn: &mut Connection, rows: &[ResponseRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut forget = tx.prepare_cached(&DELETE_ITEMS_OF.replace('$', "?"))?;
        let mut upsert = tx.prepare_cached(&upsert_response_sql().replace('$', "?"))?;
        let mut index = tx.prepare_cached(&UPSERT_ITEM.replace('$', "?"))?;
        for r in rows {
            forget.execute([&r.id])?;
            upsert.execute(rusqlite::params![
                r.id,
                r.owner,
                r.created_ms,
                r.expires_ms,
                r.size_bytes,
                r.model,
                r.deployment,
                r.upstream_dialect,
                r.previous_response_id,
                r.input_items,
                r.response,
                r.replay,
            ])?;
            for (item_id, item) in &r.items {
                index.execute(rusqlite::params![item_id, r.id, item])?;
            }
        }
    }
    tx.commit()
}

/// Deletes the responses `ids` and the item rows they hold, in one transaction; returns how
/// many responses were stored.
fn delete_responses(conn: &mut Connection, ids: &[String]) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let deleted = delete_in(&tx, ids)?;
    tx.commit()?;
    Ok(deleted)
}

fn delete_in(tx: &rusqlite::Transaction<'_>, ids: &[String]) -> rusqlite::Result<u64> {
    let mut forget = tx.prepare_cached(&DELETE_ITEMS_OF.replace('$', "?"))?;
    let mut delete = tx.prepare_cached(&DELETE_RESPONSE.replace('$', "?"))?;
    let mut deleted = 0;
    for id in ids {
        forget.execute([id])?;
        deleted += delete.execute([id])? as u64;
    }
    Ok(deleted)
}

/// Expired first, then the oldest while over `max_bytes`, in one transaction.
fn purge_responses(
    conn: &mut Connection,
    now_ms: i64,
    max_bytes: Option<i64>,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = |sql: &str, bound: i64| -> rusqlite::Result<Vec<String>> {
        let mut st = tx.prepare_cached(&sql.replace('$', "?"))?;
        let rows = st.query_map([bound], |row| row.get(0))?;
        rows.collect()
    };
    let expired = ids(EXPIRED, now_ms)?;
    let mut deleted = delete_in(&tx, &expired)?;
    if let Some(max) = max_bytes {
        let over = ids(OVER_BUDGET, max)?;
        deleted += delete_in(&tx, &over)?;
    }
    tx.commit()?;
    Ok(deleted)
}

/// The shared SQL numbers its placeholders `$N`, which SQLite numbers by first appearance;
/// `?N` pins each to its index whatever the order.
fn for_sqlite(sql: String, args: Vec<Arg>) -> (String, Vec<Value>) {
    let args = args
        .into_iter()
        .map(|arg| match arg {
            Arg::Text(s) => Value::Text(s),
            Arg::Int(i) => Value::Integer(i),
        })
        .collect();
    (sql.replace('$', "?"), args)
}

fn select<T>(
    conn: &Connection,
    sql: &str,
    args: Vec<Value>,
    row: fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    // Cached: the spend API asks the same few shapes of question again and again.
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params_from_iter(args), row)?;
    rows.collect()
}

/// Columns in `COLUMNS` order, as `logs_sql` selects them.
fn raw_record(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        request_id: row.get(0)?,
        started_at_ms: row.get(1)?,
        principal: row.get(2)?,
        client_dialect: row.get(3)?,
        upstream_dialect: row.get(4)?,
        model: row.get(5)?,
        deployment: row.get(6)?,
        provider_model: row.get(7)?,
        stream: row.get(8)?,
        outcome: row.get(9)?,
        status: row.get(10)?,
        latency_ms: row.get(11)?,
        ttft_ms: row.get(12)?,
        input_uncached: row.get(13)?,
        cache_read: row.get(14)?,
        cache_write: row.get(15)?,
        cache_write_5m: row.get(16)?,
        cache_write_1h: row.get(17)?,
        output: row.get(18)?,
        reasoning: row.get(19)?,
        web_search_requests: row.get(20)?,
        web_fetch_requests: row.get(21)?,
        usage_estimated: row.get(22)?,
        cost_nanos: row.get(23)?,
        attempts: row.get(24)?,
        attempted: row.get(25)?,
        api_key: row.get(26)?,
        key_alias: row.get(27)?,
        team_id: row.get(28)?,
        user_id: row.get(29)?,
        end_user: row.get(30)?,
        cache_hit: row.get(31)?,
        saved_cost_nanos: row.get(32)?,
        dropped: row.get(33)?,
    })
}

/// Columns in the order `SELECT_RESPONSE` selects them.
fn raw_response(row: &Row<'_>) -> rusqlite::Result<RawResponse> {
    Ok(RawResponse {
        id: row.get(0)?,
        owner: row.get(1)?,
        created_ms: row.get(2)?,
        expires_ms: row.get(3)?,
        model: row.get(4)?,
        deployment: row.get(5)?,
        upstream_dialect: row.get(6)?,
        previous_response_id: row.get(7)?,
        input_items: row.get(8)?,
        response: row.get(9)?,
        replay: row.get(10)?,
    })
}

fn doc_row(row: &Row<'_>) -> rusqlite::Result<Doc> {
    Ok(Doc {
        kind: row.get(0)?,
        id: row.get(1)?,
        body: row.get(2)?,
        updated_ms: row.get(3)?,
        deleted: row.get(4)?,
    })
}

/// Columns in the order `summary_sql` selects them.
fn summary_row(row: &Row<'_>) -> rusqlite::Result<SummaryRow> {
    Ok(SummaryRow {
        key: row.get(0)?,
        requests: row.get(1)?,
        input_uncached: row.get(2)?,
        cache_read: row.get(3)?,
        cache_write: row.get(4)?,
        output: row.get(5)?,
        reasoning: row.get(6)?,
        cost_nanos: row.get(7)?,
        unknown_cost_requests: row.get(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_embedded_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        assert_eq!(files.len(), MIGRATIONS.len());
        for (file, &(number, sql)) in files.iter().zip(MIGRATIONS) {
            let name = file.file_name().unwrap().to_str().unwrap();
            let prefix: i64 = name.split('_').next().unwrap().parse().unwrap();
            assert_eq!(prefix, number, "{name}");
            assert_eq!(std::fs::read_to_string(file).unwrap(), sql, "{name}");
        }
    }

    #[test]
    fn urls_parse_as_sqlx_parsed_them() {
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Target::Memory);
        assert_eq!(
            parse_url("sqlite://x.db?mode=memory").unwrap(),
            Target::Memory
        );
        assert_eq!(
            parse_url("sqlite:///tmp/a%20b.db?mode=rwc").unwrap(),
            Target::File {
                path: PathBuf::from("/tmp/a b.db"),
                read_only: false
            }
        );
        assert_eq!(
            parse_url("sqlite:rel/a.db?mode=ro").unwrap(),
            Target::File {
                path: PathBuf::from("rel/a.db"),
                read_only: true
            }
        );
        assert!(parse_url("sqlite://a.db?cache=weird").is_err());
        assert!(parse_url("sqlite://a.db?mode=x").is_err());
        assert!(parse_url("sqlite://").is_err());
        assert!(parse_url("sqlite://a%zz.db").is_err());
    }

    #[test]
    fn migrations_apply_once_and_adopt_a_sqlx_made_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        // As the sqlx-based store left it: the table, and its history in `_sqlx_migrations`.
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.execute_batch(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (1, TRUE);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
    }
}
