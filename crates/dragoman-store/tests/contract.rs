//! One contract for every backend: each behaviour is a generic async fn run against SQLite (a
//! temp file, and in memory where a fresh database per connection makes sense) and PostgreSQL,
//! so the backends cannot drift apart.
//!
//! PostgreSQL: `DRAGOMAN_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! every test works in its own schema, dropped at the end. An unreachable server fails the
//! tests; `DRAGOMAN_TEST_POSTGRES_URL=skip` skips them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dragoman_accounting::{Outcome, Owner, UsageRecord};
use dragoman_model::{Dialect, Usage};
use dragoman_store::{
    Doc, GroupBy, LogQuery, Sink, Store, StoreError, StoredResponse, SummaryRow, WriterOptions,
    spawn_response_writer, spawn_writer,
};
use serde_json::{Value, json};
use sqlx::Connection;

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Clone, Copy)]
enum Kind {
    SqliteFile,
    SqliteMemory,
    Postgres,
}

enum Target {
    Dir(PathBuf, String),
    Memory,
    Pg { url: String, schema: String },
}

struct Fixture {
    store: Store,
    target: Target,
}

fn unique() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn pg_url() -> String {
    std::env::var("DRAGOMAN_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

impl Fixture {
    /// `None` when the backend is deliberately skipped.
    async fn open(kind: Kind) -> Option<Fixture> {
        match kind {
            Kind::SqliteFile => {
                // A directory that does not exist yet: `connect` must create it.
                let dir = std::env::temp_dir().join(format!("dragoman-store-{}", unique()));
                let url = format!("sqlite://{}", dir.join("usage.db").display());
                let store = Store::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("opening {url}: {e}"));
                Some(Fixture {
                    store,
                    target: Target::Dir(dir, url),
                })
            }
            Kind::SqliteMemory => Some(Fixture {
                store: Store::connect("sqlite::memory:").await.unwrap(),
                target: Target::Memory,
            }),
            Kind::Postgres => {
                let url = pg_url();
                if url == "skip" {
                    eprintln!("DRAGOMAN_TEST_POSTGRES_URL=skip: PostgreSQL contract test skipped");
                    return None;
                }
                let schema = format!("dragoman_t_{}", unique());
                let store = Store::connect_with_schema(&url, &schema)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL is unreachable for the contract tests ({e}). Start it, \
                             point DRAGOMAN_TEST_POSTGRES_URL at one, or set \
                             DRAGOMAN_TEST_POSTGRES_URL=skip"
                        )
                    });
                Some(Fixture {
                    store,
                    target: Target::Pg { url, schema },
                })
            }
        }
    }

    /// A second, independent connection to the same database (`None` in memory, where a new
    /// connection is a new database).
    async fn reconnect(&self) -> Option<Store> {
        match &self.target {
            Target::Dir(_, url) => Some(Store::connect(url).await.unwrap()),
            Target::Memory => None,
            Target::Pg { url, schema } => {
                Some(Store::connect_with_schema(url, schema).await.unwrap())
            }
        }
    }

    /// Rows in `table` counted behind the store's back, to see that deleted rows are gone and
    /// not merely hidden (`None` in memory, where no other connection reaches the database).
    async fn rows_in(&self, table: &str) -> Option<i64> {
        match &self.target {
            Target::Dir(dir, _) => {
                let conn = rusqlite::Connection::open(dir.join("usage.db")).unwrap();
                Some(
                    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                        row.get(0)
                    })
                    .unwrap(),
                )
            }
            Target::Memory => None,
            Target::Pg { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {schema}.{table}"
                )))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                Some(n)
            }
        }
    }

    async fn finish(self) {
        self.store.close().await;
        match self.target {
            Target::Dir(dir, _) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Target::Memory => {}
            Target::Pg { url, schema } => {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Generates one `#[tokio::test]` per behaviour for one backend.
macro_rules! contract {
    ($module:ident, $kind:ident, [$($name:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fx) = super::Fixture::open(super::Kind::$kind).await else {
                        return;
                    };
                    // Clean up (drop the schema, remove the file) even when the check fails.
                    let outcome = futures_util::FutureExt::catch_unwind(
                        std::panic::AssertUnwindSafe(super::$name(&fx)),
                    )
                    .await;
                    fx.finish().await;
                    if let Err(panic) = outcome {
                        std::panic::resume_unwind(panic);
                    }
                }
            )*
        }
    };
}

contract!(
    sqlite_file,
    SqliteFile,
    [
        roundtrip_keeps_every_field,
        logs_filter_order_and_limit,
        duplicates_are_stored_once,
        summary_sums_by_key,
        migrations_are_idempotent,
        writer_stores_every_record,
        writer_loses_nothing_while_the_store_fails,
        writer_counts_exactly_the_overflow,
        ping_and_empty_queries,
        tenancy_documents_and_tombstones,
        owner_columns_filter_group_and_sum,
        responses_round_trip_exactly,
        responses_replace_by_id,
        response_items_resolve_and_move,
        expired_responses_are_hidden_then_purged,
        size_bound_purges_oldest_first,
        delete_removes_the_response_and_its_items,
        response_writer_flushes_and_counts_drops,
        sqlite_delete_overwrites_the_content,
    ]
);

contract!(
    sqlite_memory,
    SqliteMemory,
    [
        roundtrip_keeps_every_field,
        logs_filter_order_and_limit,
        duplicates_are_stored_once,
        summary_sums_by_key,
        writer_stores_every_record,
        writer_loses_nothing_while_the_store_fails,
        writer_counts_exactly_the_overflow,
        ping_and_empty_queries,
        tenancy_documents_and_tombstones,
        owner_columns_filter_group_and_sum,
        responses_round_trip_exactly,
        responses_replace_by_id,
        response_items_resolve_and_move,
        expired_responses_are_hidden_then_purged,
        size_bound_purges_oldest_first,
        delete_removes_the_response_and_its_items,
        response_writer_flushes_and_counts_drops,
    ]
);

contract!(
    postgres,
    Postgres,
    [
        roundtrip_keeps_every_field,
        logs_filter_order_and_limit,
        duplicates_are_stored_once,
        summary_sums_by_key,
        migrations_are_idempotent,
        writer_stores_every_record,
        writer_loses_nothing_while_the_store_fails,
        writer_counts_exactly_the_overflow,
        ping_and_empty_queries,
        schema_in_url_options,
        tenancy_documents_and_tombstones,
        owner_columns_filter_group_and_sum,
        responses_round_trip_exactly,
        responses_replace_by_id,
        response_items_resolve_and_move,
        expired_responses_are_hidden_then_purged,
        size_bound_purges_oldest_first,
        delete_removes_the_response_and_its_items,
        response_writer_flushes_and_counts_drops,
    ]
);

// ---------------------------------------------------------------------------------------------
// Records

fn rec(id: &str, started_at_ms: i64, model: &str, principal: &str) -> UsageRecord {
    UsageRecord {
        request_id: id.to_owned(),
        started_at_ms,
        principal: principal.to_owned(),
        client_dialect: Dialect::Chat,
        upstream_dialect: Some(Dialect::Anthropic),
        model: model.to_owned(),
        deployment: Some("dep".to_owned()),
        provider_model: Some("provider-model".to_owned()),
        stream: false,
        outcome: Outcome::Ok,
        status: 200,
        latency_ms: 10,
        ttft_ms: Some(5),
        usage: Usage {
            input_uncached: Some(1),
            output: Some(1),
            ..Usage::default()
        },
        usage_estimated: false,
        attempts: 1,
        attempted: None,
        cost_nanos: Some(1),
        owner: Owner::default(),
        cache_hit: false,
        saved_cost_nanos: None,
        dropped: None,
    }
}

fn with_usage(mut r: UsageRecord, usage: Usage, cost_nanos: Option<i64>) -> UsageRecord {
    r.usage = usage;
    r.cost_nanos = cost_nanos;
    r
}

fn all_logs() -> LogQuery {
    LogQuery {
        limit: LogQuery::MAX_LIMIT,
        ..LogQuery::default()
    }
}

fn sorted_by_id(mut v: Vec<UsageRecord>) -> Vec<UsageRecord> {
    v.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    v
}

/// The spend API's order: newest first, ties by request id descending.
fn newest_first(mut v: Vec<UsageRecord>) -> Vec<UsageRecord> {
    v.sort_by(|a, b| {
        b.started_at_ms
            .cmp(&a.started_at_ms)
            .then_with(|| b.request_id.cmp(&a.request_id))
    });
    v
}

// ---------------------------------------------------------------------------------------------
// Behaviours

async fn roundtrip_keeps_every_field(fx: &Fixture) {
    let full = UsageRecord {
        request_id: "full".to_owned(),
        started_at_ms: 1_740_787_200_123,
        principal: "key-1".to_owned(),
        client_dialect: Dialect::Chat,
        upstream_dialect: Some(Dialect::Responses),
        model: "gpt-5".to_owned(),
        deployment: Some("openai-main".to_owned()),
        provider_model: Some("gpt-5-2025-08-07".to_owned()),
        stream: true,
        outcome: Outcome::Ok,
        status: 200,
        latency_ms: 1234,
        ttft_ms: Some(56),
        usage: Usage {
            input_uncached: Some(11),
            cache_read: Some(12),
            cache_write: Some(13),
            cache_write_5m: Some(14),
            cache_write_1h: Some(15),
            output: Some(16),
            reasoning: Some(17),
            web_search_requests: Some(18),
            web_fetch_requests: Some(19),
        },
        usage_estimated: true,
        attempts: 3,
        attempted: Some("eu#0:429,eu#0:timeout,us#1:ok".to_owned()),
        cost_nanos: Some(123_456_789_012),
        owner: Owner {
            api_key: Some("a".repeat(64)),
            key_alias: Some("alice's laptop".to_owned()),
            team_id: Some("team-eu".to_owned()),
            user_id: Some("alice@example.com".to_owned()),
            end_user: Some("customer-42".to_owned()),
        },
        cache_hit: true,
        saved_cost_nanos: Some(1_777_500),
        dropped: Some(
            "dropped: messages[0].content[1]: no image input\napproximated: top_k: sent as is"
                .to_owned(),
        ),
    };
    let unknown = UsageRecord {
        request_id: "unknown".to_owned(),
        started_at_ms: -5,
        principal: "open".to_owned(),
        client_dialect: Dialect::Anthropic,
        upstream_dialect: None,
        model: "claude".to_owned(),
        deployment: None,
        provider_model: None,
        stream: false,
        outcome: Outcome::GatewayError,
        status: 401,
        latency_ms: 0,
        ttft_ms: None,
        usage: Usage::default(),
        usage_estimated: false,
        attempts: 1,
        attempted: None,
        cost_nanos: None,
        owner: Owner::default(),
        cache_hit: false,
        saved_cost_nanos: None,
        dropped: None,
    };
    let zeros = UsageRecord {
        request_id: "zeros".to_owned(),
        outcome: Outcome::ClientCancelled,
        status: 499,
        ttft_ms: Some(0),
        usage: Usage {
            input_uncached: Some(0),
            cache_read: Some(0),
            cache_write: Some(0),
            cache_write_5m: Some(0),
            cache_write_1h: Some(0),
            output: Some(0),
            reasoning: Some(0),
            web_search_requests: Some(0),
            web_fetch_requests: Some(0),
        },
        cost_nanos: Some(0),
        ..unknown.clone()
    };
    let extremes = UsageRecord {
        request_id: "extremes 'quoted' \"id\"".to_owned(),
        started_at_ms: i64::MAX,
        principal: "ключ-😀".to_owned(),
        model: "it's \"m\"; DROP TABLE usage_records; --".to_owned(),
        status: u16::MAX,
        latency_ms: i64::MAX as u64,
        ttft_ms: Some(i64::MAX as u64),
        usage: Usage {
            input_uncached: Some(i64::MAX as u64),
            cache_read: None,
            cache_write: Some(1),
            cache_write_5m: None,
            cache_write_1h: Some(1),
            output: None,
            reasoning: Some(0),
            web_search_requests: None,
            web_fetch_requests: Some(3),
        },
        cost_nanos: Some(i64::MIN),
        ..full.clone()
    };
    let mut records = vec![full, unknown, zeros, extremes];
    let outcomes = [
        Outcome::Ok,
        Outcome::UpstreamError,
        Outcome::ClientCancelled,
        Outcome::Timeout,
        Outcome::GatewayError,
    ];
    for (i, client) in Dialect::ALL.into_iter().enumerate() {
        for (j, upstream) in Dialect::ALL.into_iter().enumerate() {
            let mut r = rec(
                &format!("combo-{i}-{j}"),
                1000 + (i * 3 + j) as i64,
                "m",
                "p",
            );
            r.client_dialect = client;
            r.upstream_dialect = Some(upstream);
            r.outcome = outcomes[(i * 3 + j) % outcomes.len()];
            records.push(r);
        }
    }
    fx.store.insert_batch(&records).await.unwrap();
    assert_eq!(fx.store.count().await.unwrap(), records.len() as i64);
    let got = fx.store.logs(&all_logs()).await.unwrap();
    assert_eq!(sorted_by_id(got), sorted_by_id(records));
}

async fn logs_filter_order_and_limit(fx: &Fixture) {
    let base = 1_740_787_200_000;
    let mut records: Vec<UsageRecord> = (0..12)
        .map(|i| {
            rec(
                &format!("r{i:02}"),
                base + i * 1000,
                &format!("m{}", i % 3),
                &format!("u{}", i % 2),
            )
        })
        .collect();
    // Same start time: the request id breaks the tie.
    records.push(rec("r05b", base + 5 * 1000, "m2", "u1"));
    fx.store.insert_batch(&records).await.unwrap();

    let expect = |keep: &dyn Fn(&UsageRecord) -> bool| {
        newest_first(records.iter().filter(|r| keep(r)).cloned().collect())
    };

    let got = fx.store.logs(&LogQuery::default()).await.unwrap();
    assert_eq!(got, expect(&|_| true));

    let q = LogQuery {
        model: Some("m1".to_owned()),
        ..LogQuery::default()
    };
    assert_eq!(
        fx.store.logs(&q).await.unwrap(),
        expect(&|r| r.model == "m1")
    );

    let q = LogQuery {
        principal: Some("u1".to_owned()),
        model: Some("m2".to_owned()),
        ..LogQuery::default()
    };
    let got = fx.store.logs(&q).await.unwrap();
    assert_eq!(got, expect(&|r| r.principal == "u1" && r.model == "m2"));
    assert!(!got.is_empty());

    // since inclusive, until exclusive.
    let q = LogQuery {
        since_ms: Some(base + 5000),
        until_ms: Some(base + 9000),
        ..LogQuery::default()
    };
    let got = fx.store.logs(&q).await.unwrap();
    assert_eq!(
        got,
        expect(&|r| r.started_at_ms >= base + 5000 && r.started_at_ms < base + 9000)
    );
    assert_eq!(got.len(), 5);
    assert_eq!(got.last().unwrap().request_id, "r05");

    let q = LogQuery {
        limit: 3,
        ..LogQuery::default()
    };
    let got = fx.store.logs(&q).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["r11", "r10", "r09"]);

    let q = LogQuery {
        limit: 0,
        ..LogQuery::default()
    };
    assert!(fx.store.logs(&q).await.unwrap().is_empty());
    let q = LogQuery {
        limit: -7,
        ..LogQuery::default()
    };
    assert!(fx.store.logs(&q).await.unwrap().is_empty());

    // The default limit is 100 and no query returns more than 1000.
    let bulk: Vec<UsageRecord> = (0..1010)
        .map(|i| rec(&format!("bulk{i:04}"), base - 1_000_000 + i, "bulk", "u"))
        .collect();
    fx.store.insert_batch(&bulk).await.unwrap();
    let q = LogQuery {
        model: Some("bulk".to_owned()),
        ..LogQuery::default()
    };
    let got = fx.store.logs(&q).await.unwrap();
    assert_eq!(got.len(), 100);
    assert_eq!(got[0].request_id, "bulk1009");
    let q = LogQuery {
        model: Some("bulk".to_owned()),
        limit: 5000,
        ..LogQuery::default()
    };
    let got = fx.store.logs(&q).await.unwrap();
    assert_eq!(got.len(), 1000);
    assert_eq!(got[999].request_id, "bulk0010");
}

async fn duplicates_are_stored_once(fx: &Fixture) {
    let batch: Vec<UsageRecord> = (0..5)
        .map(|i| rec(&format!("d{i}"), 1000 + i, "m", "p"))
        .collect();
    fx.store.insert_batch(&batch).await.unwrap();
    fx.store.insert_batch(&batch).await.unwrap();
    assert_eq!(fx.store.count().await.unwrap(), 5);

    // A retried batch that overlaps, with a duplicate inside itself and a changed copy of a
    // stored record: only the new id is added and the stored row is not overwritten.
    let mut changed = batch[0].clone();
    changed.cost_nanos = Some(999);
    let new = rec("d-new", 2000, "m", "p");
    let retry = vec![changed, batch[1].clone(), new.clone(), new.clone()];
    fx.store.insert_batch(&retry).await.unwrap();
    assert_eq!(fx.store.count().await.unwrap(), 6);
    let got = fx.store.logs(&all_logs()).await.unwrap();
    let mut expected = batch.clone();
    expected.push(new);
    assert_eq!(sorted_by_id(got), sorted_by_id(expected));

    fx.store.insert_batch(&[]).await.unwrap();
    assert_eq!(fx.store.count().await.unwrap(), 6);
}

#[allow(clippy::too_many_arguments)]
fn row(
    key: &str,
    requests: i64,
    input_uncached: i64,
    cache_read: i64,
    cache_write: i64,
    output: i64,
    reasoning: i64,
    cost_nanos: i64,
    unknown_cost_requests: i64,
) -> SummaryRow {
    SummaryRow {
        key: key.to_owned(),
        requests,
        input_uncached,
        cache_read,
        cache_write,
        output,
        reasoning,
        cost_nanos,
        unknown_cost_requests,
    }
}

async fn summary_sums_by_key(fx: &Fixture) {
    let d1 = 1_740_787_200_000; // 2025-03-01T00:00:00Z
    let d2 = d1 + 86_400_000; // 2025-03-02T00:00:00Z
    let u = |input, cache_read, cache_write, output, reasoning| Usage {
        input_uncached: input,
        cache_read,
        cache_write,
        output,
        reasoning,
        // Not summed: present only to show they do not leak into other sums.
        cache_write_5m: Some(1000),
        web_search_requests: Some(1000),
        ..Usage::default()
    };
    let records = vec![
        with_usage(
            rec("r1", d1 + 1000, "a", "p1"),
            u(Some(10), Some(5), None, Some(7), Some(2)),
            Some(100),
        ),
        with_usage(
            rec("r2", d2 - 1, "a", "p2"),
            u(None, None, Some(3), Some(1), None),
            None,
        ),
        with_usage(
            rec("r3", d2, "b", "p1"),
            u(Some(4), Some(0), Some(6), Some(0), Some(0)),
            Some(50),
        ),
        with_usage(
            rec("r4", d1 - 1, "b", "p1"),
            u(Some(1), None, None, None, None),
            None,
        ),
        // Upper case sorts before lower case: keys come back in byte order on every backend.
        with_usage(
            rec("r5", d2 + 5000, "B", "p3"),
            u(Some(2), Some(2), Some(2), Some(2), Some(1)),
            Some(7),
        ),
    ];
    fx.store.insert_batch(&records).await.unwrap();

    let by_model = fx.store.summary(GroupBy::Model, None, None).await.unwrap();
    assert_eq!(
        by_model,
        vec![
            row("B", 1, 2, 2, 2, 2, 1, 7, 0),
            row("a", 2, 10, 5, 3, 8, 2, 100, 1),
            row("b", 2, 5, 0, 6, 0, 0, 50, 1),
        ]
    );

    let by_principal = fx
        .store
        .summary(GroupBy::Principal, None, None)
        .await
        .unwrap();
    assert_eq!(
        by_principal,
        vec![
            row("p1", 3, 15, 5, 6, 7, 2, 150, 1),
            row("p2", 1, 0, 0, 3, 1, 0, 0, 1),
            row("p3", 1, 2, 2, 2, 2, 1, 7, 0),
        ]
    );

    let by_day = fx.store.summary(GroupBy::Day, None, None).await.unwrap();
    assert_eq!(
        by_day,
        vec![
            row("2025-02-28", 1, 1, 0, 0, 0, 0, 0, 1),
            row("2025-03-01", 2, 10, 5, 3, 8, 2, 100, 1),
            row("2025-03-02", 2, 6, 2, 8, 2, 1, 57, 0),
        ]
    );

    // since inclusive, until exclusive: exactly 2025-03-01.
    let window = fx
        .store
        .summary(GroupBy::Model, Some(d1), Some(d2))
        .await
        .unwrap();
    assert_eq!(window, vec![row("a", 2, 10, 5, 3, 8, 2, 100, 1)]);

    let empty = fx
        .store
        .summary(GroupBy::Day, Some(d2 + 86_400_000), None)
        .await
        .unwrap();
    assert!(empty.is_empty());
}

async fn migrations_are_idempotent(fx: &Fixture) {
    fx.store
        .insert_batch(&[rec("m1", 1, "m", "p")])
        .await
        .unwrap();
    let again = fx.reconnect().await.expect("a file or server database");
    let third = fx.reconnect().await.expect("a file or server database");
    assert_eq!(again.count().await.unwrap(), 1);
    again.insert_batch(&[rec("m2", 2, "m", "p")]).await.unwrap();
    assert_eq!(third.count().await.unwrap(), 2);
    assert_eq!(fx.store.count().await.unwrap(), 2);
    again.close().await;
    third.close().await;
}

fn fast_options() -> WriterOptions {
    WriterOptions {
        batch_size: 64,
        flush_interval: Duration::from_millis(20),
        retry_backoff: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(40),
        ..WriterOptions::default()
    }
}

async fn writer_stores_every_record(fx: &Fixture) {
    let (writer, task) = spawn_writer(Arc::new(fx.store.clone()), fast_options());
    let records: Vec<UsageRecord> = (0..1000)
        .map(|i| rec(&format!("w{i:04}"), i, "m", "p"))
        .collect();
    for r in &records {
        writer.record(r.clone());
    }
    let stats = writer.close(Duration::from_secs(30)).await;
    task.await.unwrap();
    assert_eq!(stats.written, 1000);
    assert_eq!(stats.backlog, 0);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.failed_attempts, 0);
    assert_eq!(fx.store.count().await.unwrap(), 1000);
    assert_eq!(
        sorted_by_id(fx.store.logs(&all_logs()).await.unwrap()),
        records
    );
}

/// Fails its first `failures` calls, then delegates to the store; with `after_write` the failing
/// calls write first and report an error anyway (the ambiguous case: committed, reply lost).
struct FailingSink {
    failures: AtomicUsize,
    after_write: bool,
    inner: Store,
}

impl Sink for FailingSink {
    fn insert_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        let fail = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Box::pin(async move {
            if !fail {
                return self.inner.insert_batch(records).await;
            }
            if self.after_write {
                self.inner.insert_batch(records).await?;
            }
            Err(StoreError::InvalidArgument {
                backend: "test",
                reason: "injected failure".to_owned(),
            })
        })
    }
}

async fn writer_loses_nothing_while_the_store_fails(fx: &Fixture) {
    for (round, after_write) in [(0, false), (1, true)] {
        let failures = 5;
        let sink = Arc::new(FailingSink {
            failures: AtomicUsize::new(failures),
            after_write,
            inner: fx.store.clone(),
        });
        let (writer, task) = spawn_writer(sink, fast_options());
        for i in 0..300 {
            writer.record(rec(&format!("f{round}-{i:03}"), i, "m", "p"));
        }
        let stats = writer.close(Duration::from_secs(30)).await;
        task.await.unwrap();
        assert!(
            stats.failed_attempts >= failures as u64,
            "{stats:?} after_write={after_write}"
        );
        assert_eq!(stats.written, 300, "{stats:?} after_write={after_write}");
        assert_eq!(stats.backlog, 0);
        assert_eq!(stats.dropped, 0);
        assert_eq!(fx.store.count().await.unwrap(), 300 * (round + 1));
    }
}

/// Holds every insert until the gate opens, then delegates.
struct GatedSink {
    gate: tokio::sync::watch::Sender<bool>,
    inner: Store,
}

impl Sink for GatedSink {
    fn insert_batch<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        let mut open = self.gate.subscribe();
        Box::pin(async move {
            let _ = open.wait_for(|o| *o).await;
            self.inner.insert_batch(records).await
        })
    }
}

async fn writer_counts_exactly_the_overflow(fx: &Fixture) {
    let sink = Arc::new(GatedSink {
        gate: tokio::sync::watch::Sender::new(false),
        inner: fx.store.clone(),
    });
    let options = WriterOptions {
        capacity: 50,
        batch_size: 16,
        ..fast_options()
    };
    let (writer, task) = spawn_writer(sink.clone(), options);
    for i in 0..80 {
        writer.record(rec(&format!("o{i:02}"), i, "m", "p"));
        if i == 20 {
            // Let the task take a batch: records in flight still count toward capacity.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stats = writer.stats();
    assert_eq!(stats.dropped, 30);
    assert_eq!(stats.backlog, 50);
    assert_eq!(stats.written, 0);

    let late = writer.clone();
    sink.gate.send_replace(true);
    let stats = writer.close(Duration::from_secs(30)).await;
    task.await.unwrap();
    assert_eq!(stats.written, 50);
    assert_eq!(stats.dropped, 30);
    assert_eq!(stats.backlog, 0);
    assert_eq!(fx.store.count().await.unwrap(), 50);
    let stored = sorted_by_id(fx.store.logs(&all_logs()).await.unwrap());
    let ids: Vec<String> = stored.into_iter().map(|r| r.request_id).collect();
    let first_fifty: Vec<String> = (0..50).map(|i| format!("o{i:02}")).collect();
    assert_eq!(ids, first_fifty);

    // After close, recording is refused and counted, never silently lost.
    late.record(rec("after-close", 0, "m", "p"));
    assert_eq!(late.stats().dropped, 31);
    assert_eq!(fx.store.count().await.unwrap(), 50);
}

async fn ping_and_empty_queries(fx: &Fixture) {
    fx.store.ping().await.unwrap();
    assert_eq!(fx.store.count().await.unwrap(), 0);
    assert!(
        fx.store
            .logs(&LogQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    for g in [GroupBy::Model, GroupBy::Principal, GroupBy::Day] {
        assert!(fx.store.summary(g, None, None).await.unwrap().is_empty());
    }
}

/// PostgreSQL only: `?options=-csearch_path%3DNAME` in a plain URL reaches the same schema as
/// `connect_with_schema`.
async fn schema_in_url_options(fx: &Fixture) {
    let Target::Pg { url, schema } = &fx.target else {
        return;
    };
    fx.store
        .insert_batch(&[rec("s1", 1, "m", "p")])
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let via_url = Store::connect(&format!("{url}{sep}options=-csearch_path%3D{schema}"))
        .await
        .unwrap();
    assert_eq!(via_url.count().await.unwrap(), 1);
    via_url.close().await;
}

// ---------------------------------------------------------------------------------------------
// Backend-independent behaviours

/// Never answers.
struct HangingSink;

impl Sink for HangingSink {
    fn insert_batch<'a>(
        &'a self,
        _records: &'a [UsageRecord],
    ) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_never_blocks_on_a_hung_store() {
    for capacity in [100_000, 4_000] {
        let options = WriterOptions {
            capacity,
            batch_size: 500,
            flush_interval: Duration::from_millis(1),
            ..WriterOptions::default()
        };
        let (writer, task) = spawn_writer(Arc::new(HangingSink), options);
        let template = rec("x", 0, "m", "p");
        let start = Instant::now();
        for i in 0..10_000 {
            let mut r = template.clone();
            r.request_id = format!("h{i}");
            writer.record(r);
        }
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(2), "record took {elapsed:?}");
        let stats = writer.stats();
        assert_eq!(stats.backlog, 10_000.min(capacity));
        assert_eq!(stats.dropped, 10_000 - 10_000.min(capacity) as u64);
        assert_eq!(stats.written, 0);

        // close gives up at its deadline and reports what it could not write.
        let start = Instant::now();
        let stats = writer.close(Duration::from_millis(200)).await;
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(stats.backlog, 10_000.min(capacity));
        assert_eq!(stats.written, 0);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the task ends after an aborted close")
            .unwrap();
    }
}

/// An idle writer sleeps until a record arrives (no periodic wake-ups), then writes it within
/// the flush interval, without waiting for a close: records that trickle in after quiet
/// spells are never stranded.
#[tokio::test]
async fn records_after_a_quiet_spell_are_written_without_a_close() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let (writer, task) = spawn_writer(Arc::new(store.clone()), fast_options());
    for round in 0..3i64 {
        // Several flush intervals of silence: the task is idle.
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.record(rec(&format!("quiet{round}"), round, "m", "p"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.stats().written < round as u64 + 1 {
            assert!(Instant::now() < deadline, "record {round} was not written");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(store.count().await.unwrap(), 3);
    let stats = writer.close(Duration::from_secs(5)).await;
    assert_eq!((stats.written, stats.backlog), (3, 0));
    task.await.unwrap();
}

#[tokio::test]
async fn dropping_every_writer_flushes_and_ends_the_task() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let (writer, task) = spawn_writer(Arc::new(store.clone()), fast_options());
    for i in 0..10 {
        writer.record(rec(&format!("drop{i}"), i, "m", "p"));
    }
    drop(writer);
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the task ends once no writer is left")
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 10);
}

#[tokio::test]
async fn errors_never_echo_passwords() {
    let err = Store::connect("postgres://admin:hunter2@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(msg.contains("PostgreSQL"), "{msg}");
    assert!(msg.contains("127.0.0.1:1/db"), "{msg}");

    let err = Store::connect("mysql://admin:hunter2@host/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::InvalidUrl { .. }), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    let err = Store::connect_with_schema("postgres://u:hunter2@127.0.0.1:1/db", "Bad; name")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { .. }), "{err}");
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn sqlite_file_uses_wal() {
    let dir = std::env::temp_dir().join(format!("dragoman-store-{}", unique()));
    let path = dir.join("usage.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.unwrap();
    store
        .insert_batch(&[rec("wal", 1, "m", "p")])
        .await
        .unwrap();
    store.close().await;
    // Checked through a connection of its own: the setting must be in the file, not the session.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    drop(conn);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Tenancy

async fn tenancy_documents_and_tombstones(fx: &Fixture) {
    let store = &fx.store;
    assert!(store.docs_since(0).await.unwrap().is_empty());
    let doc = |kind: &str, id: &str, body: &str, at: i64, deleted: bool| Doc {
        kind: kind.to_owned(),
        id: id.to_owned(),
        body: body.to_owned(),
        updated_ms: at,
        deleted,
    };
    store
        .put_doc(&doc("key", "h1", r#"{"a":1}"#, 100, false))
        .await
        .unwrap();
    store
        .put_doc(&doc("team", "t1", r#"{"t":"é"}"#, 200, false))
        .await
        .unwrap();
    // The same id of another kind is another document.
    store
        .put_doc(&doc("user", "h1", "{}", 150, false))
        .await
        .unwrap();
    // An update replaces the body and moves the change time on.
    store
        .put_doc(&doc("key", "h1", r#"{"a":2}"#, 300, false))
        .await
        .unwrap();
    let all = store.docs_since(0).await.unwrap();
    assert_eq!(
        all,
        vec![
            doc("user", "h1", "{}", 150, false),
            doc("team", "t1", r#"{"t":"é"}"#, 200, false),
            doc("key", "h1", r#"{"a":2}"#, 300, false),
        ]
    );
    // A deletion is a tombstone a poller sees as a change.
    store
        .put_doc(&doc("team", "t1", "{}", 400, true))
        .await
        .unwrap();
    let changed = store.docs_since(301).await.unwrap();
    assert_eq!(changed, vec![doc("team", "t1", "{}", 400, true)]);
    assert_eq!(store.docs_since(401).await.unwrap(), vec![]);
    // Another connection sees the same documents.
    if let Some(other) = fx.reconnect().await {
        assert_eq!(other.docs_since(0).await.unwrap().len(), 3);
        other.close().await;
    }
}

async fn owner_columns_filter_group_and_sum(fx: &Fixture) {
    let store = &fx.store;
    let owned = |id: &str,
                 at: i64,
                 key: Option<&str>,
                 team: Option<&str>,
                 user: Option<&str>,
                 cost: i64| {
        let mut r = rec(id, at, "m", "p");
        r.cost_nanos = Some(cost);
        r.owner = Owner {
            api_key: key.map(str::to_owned),
            key_alias: key.map(|k| format!("alias-{k}")),
            team_id: team.map(str::to_owned),
            user_id: user.map(str::to_owned),
            end_user: Some(format!("eu-{id}")),
        };
        r
    };
    let records = vec![
        owned("r1", 1000, Some("k1"), Some("t1"), Some("u1"), 10),
        owned("r2", 2000, Some("k1"), Some("t1"), None, 20),
        owned("r3", 3000, Some("k2"), Some("t1"), Some("u1"), 40),
        owned("r4", 4000, Some("k2"), None, None, 80),
        owned("r5", 5000, None, None, None, 160),
    ];
    store.insert_batch(&records).await.unwrap();
    let ids = |v: Vec<UsageRecord>| v.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    let q = |f: fn(&mut LogQuery)| {
        let mut q = all_logs();
        f(&mut q);
        q
    };
    assert_eq!(
        ids(store
            .logs(&q(|q| q.api_key = Some("k1".into())))
            .await
            .unwrap()),
        ["r2", "r1"]
    );
    assert_eq!(
        ids(store
            .logs(&q(|q| q.team_id = Some("t1".into())))
            .await
            .unwrap()),
        ["r3", "r2", "r1"]
    );
    assert_eq!(
        ids(store
            .logs(&q(|q| q.user_id = Some("u1".into())))
            .await
            .unwrap()),
        ["r3", "r1"]
    );
    assert_eq!(
        ids(store
            .logs(&q(|q| q.end_user = Some("eu-r4".into())))
            .await
            .unwrap()),
        ["r4"]
    );
    let got = store
        .logs(&q(|q| q.api_key = Some("k2".into())))
        .await
        .unwrap();
    assert_eq!(got[1].owner, records[2].owner);
    let sums = |rows: Vec<SummaryRow>| {
        rows.into_iter()
            .map(|r| (r.key, r.cost_nanos))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sums(store.summary(GroupBy::Key, None, None).await.unwrap()),
        [
            ("".to_owned(), 160),
            ("k1".to_owned(), 30),
            ("k2".to_owned(), 120)
        ]
    );
    assert_eq!(
        sums(store.summary(GroupBy::Team, None, None).await.unwrap()),
        [("".to_owned(), 240), ("t1".to_owned(), 70)]
    );
    assert_eq!(store.spend(&[(GroupBy::Key, "k2")], 0).await.unwrap(), 120);
    assert_eq!(
        store.spend(&[(GroupBy::Key, "k2")], 3500).await.unwrap(),
        80
    );
    assert_eq!(store.spend(&[(GroupBy::Team, "t1")], 0).await.unwrap(), 70);
    assert_eq!(store.spend(&[(GroupBy::User, "u1")], 0).await.unwrap(), 50);
    assert_eq!(
        store
            .spend(&[(GroupBy::User, "u1"), (GroupBy::Key, "k1")], 0)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        store
            .spend(&[(GroupBy::Key, "k1"), (GroupBy::Model, "m")], 0)
            .await
            .unwrap(),
        30
    );
    assert_eq!(
        store.spend(&[(GroupBy::User, "nobody")], 0).await.unwrap(),
        0
    );
    assert!(store.spend(&[(GroupBy::Day, "x")], 0).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Responses

fn response(
    id: &str,
    created_ms: i64,
    input_items: Vec<Value>,
    output: Vec<Value>,
) -> StoredResponse {
    StoredResponse {
        id: id.to_owned(),
        owner: "owner-hash".to_owned(),
        created_ms,
        expires_ms: created_ms + 1_000_000,
        model: "gpt-5".to_owned(),
        deployment: "openai-main".to_owned(),
        upstream_dialect: "anthropic".to_owned(),
        previous_response_id: None,
        input_items,
        response: json!({"id": id, "object": "response", "output": output}),
        replay: json!({"messages": [{"role": "user", "content": "hi"}]}),
    }
}

fn message(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// The documented size of a stored response: its JSON columns and its indexed items.
fn size_of(r: &StoredResponse) -> u64 {
    let text = |v: &Value| serde_json::to_string(v).unwrap().len() as u64;
    let outputs = r.response["output"].as_array().cloned().unwrap_or_default();
    let items: u64 = r
        .input_items
        .iter()
        .chain(&outputs)
        .filter(|i| i.get("id").is_some_and(Value::is_string))
        .map(text)
        .sum();
    serde_json::to_string(&r.input_items).unwrap().len() as u64
        + text(&r.response)
        + text(&r.replay)
        + items
}

async fn responses_round_trip_exactly(fx: &Fixture) {
    let store = &fx.store;
    assert_eq!(store.response_count().await.unwrap(), 0);
    assert_eq!(store.get_response("resp_none", 0).await.unwrap(), None);
    store.put_responses(&[]).await.unwrap();

    let mut full = response(
        "resp_full",
        1_740_787_200_123,
        vec![
            message("msg_1", "ключ 😀 \"quoted\" \\ \u{0}"),
            json!({"type": "item_reference", "id": "msg_0"}),
        ],
        vec![
            json!({
                "id": "rs_1", "type": "reasoning", "summary": [],
                "encrypted_content": "x".repeat(10_000),
            }),
            json!({"id": "msg_2", "type": "message", "content": [{"type": "output_text", "text": "ok"}]}),
        ],
    );
    full.previous_response_id = Some("resp_prev".to_owned());
    // Key order, numbers at their limits, floats and nulls all come back as they went in.
    full.response["z_first"] = json!(1);
    full.response["usage"] = json!({"input_tokens": u64::MAX, "output_tokens": -1, "cost": 0.1, "x": null, "nested": {"b": [1.5e300, true], "a": {}}});
    full.replay = json!([{"role": "system", "content": null}, {"role": "user", "content": "x".repeat(100_000)}]);
    let bare = StoredResponse {
        input_items: vec![],
        response: json!({}),
        replay: Value::Null,
        previous_response_id: None,
        owner: "master".to_owned(),
        ..response("resp_bare", -5, vec![], vec![])
    };
    store
        .put_responses(&[full.clone(), bare.clone()])
        .await
        .unwrap();
    assert_eq!(store.response_count().await.unwrap(), 2);
    let got = store.get_response("resp_full", 0).await.unwrap().unwrap();
    assert_eq!(got, full);
    // Equal text, not merely equal values: key order survives too.
    assert_eq!(
        serde_json::to_string(&got.response).unwrap(),
        serde_json::to_string(&full.response).unwrap()
    );
    assert_eq!(
        store.get_response("resp_bare", 0).await.unwrap(),
        Some(bare)
    );
    if let Some(other) = fx.reconnect().await {
        assert_eq!(
            other.get_response("resp_full", 0).await.unwrap(),
            Some(full)
        );
        other.close().await;
    }
}

async fn responses_replace_by_id(fx: &Fixture) {
    let store = &fx.store;
    let v1 = response(
        "resp_a",
        100,
        vec![message("in_1", "one")],
        vec![message("out_1", "one")],
    );
    store.put_responses(&[v1]).await.unwrap();
    let mut v2 = response(
        "resp_a",
        200,
        vec![message("in_2", "two")],
        vec![message("out_2", "two")],
    );
    v2.model = "other".to_owned();
    v2.owner = "master".to_owned();
    store.put_responses(&[v2.clone()]).await.unwrap();
    assert_eq!(store.response_count().await.unwrap(), 1);
    assert_eq!(store.get_response("resp_a", 0).await.unwrap(), Some(v2));
    // Twice in one batch: the later copy is what stays, items included.
    let b1 = response("resp_b", 300, vec![], vec![message("out_b1", "first")]);
    let b2 = response("resp_b", 301, vec![], vec![message("out_b2", "second")]);
    store.put_responses(&[b1, b2.clone()]).await.unwrap();
    assert_eq!(store.response_count().await.unwrap(), 2);
    assert_eq!(store.get_response("resp_b", 0).await.unwrap(), Some(b2));
    assert_eq!(store.find_item("out_b1", 0).await.unwrap(), None);
    assert!(store.find_item("out_b2", 0).await.unwrap().is_some());
}

async fn response_items_resolve_and_move(fx: &Fixture) {
    let store = &fx.store;
    let input = message("msg_in", "question");
    let output = json!({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"});
    let a = response(
        "resp_a",
        100,
        vec![
            input.clone(),
            json!({"type": "message", "content": "no id"}),
            json!({"id": 7, "type": "odd"}),
        ],
        vec![output.clone(), json!({"type": "reasoning", "summary": []})],
    );
    store.put_responses(&[a]).await.unwrap();
    let found = |id: &'static str| async move { store.find_item(id, 0).await.unwrap() };
    assert_eq!(
        found("msg_in").await,
        Some(("resp_a".to_owned(), "owner-hash".to_owned(), input))
    );
    assert_eq!(
        found("fc_1").await,
        Some(("resp_a".to_owned(), "owner-hash".to_owned(), output))
    );
    // Only items with a string id are indexed.
    assert_eq!(found("7").await, None);
    assert_eq!(fx.rows_in("response_items").await.unwrap_or(2), 2);

    // Replaced: the items it no longer holds stop resolving, the ones it holds resolve anew.
    let changed = message("msg_in", "question, edited");
    let mut a2 = response(
        "resp_a",
        100,
        vec![changed.clone()],
        vec![message("msg_out", "answer")],
    );
    a2.owner = "master".to_owned();
    store.put_responses(&[a2]).await.unwrap();
    assert_eq!(
        found("msg_in").await,
        Some(("resp_a".to_owned(), "master".to_owned(), changed))
    );
    assert_eq!(found("fc_1").await, None);
    assert_eq!(found("msg_out").await.unwrap().0, "resp_a");

    // A newer response claiming an item id takes it (a client sending output items back as
    // input, ids and all).
    let sent_back = message("msg_out", "answer");
    let b = response("resp_b", 200, vec![sent_back.clone()], vec![]);
    store.put_responses(&[b]).await.unwrap();
    assert_eq!(
        found("msg_out").await,
        Some(("resp_b".to_owned(), "owner-hash".to_owned(), sent_back))
    );
    assert_eq!(fx.rows_in("response_items").await.unwrap_or(2), 2);
}

async fn expired_responses_are_hidden_then_purged(fx: &Fixture) {
    let store = &fx.store;
    let mut short = response("resp_short", 100, vec![message("msg_s", "s")], vec![]);
    short.expires_ms = 1000;
    let long = response("resp_long", 100, vec![message("msg_l", "l")], vec![]);
    store.put_responses(&[short, long]).await.unwrap();
    assert!(
        store
            .get_response("resp_short", 999)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.find_item("msg_s", 999).await.unwrap().is_some());
    // Gone from its expiry on, before any purge.
    assert_eq!(store.get_response("resp_short", 1000).await.unwrap(), None);
    assert_eq!(store.find_item("msg_s", 1000).await.unwrap(), None);
    assert!(
        store
            .get_response("resp_long", 1000)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.response_count().await.unwrap(), 2);
    assert_eq!(store.purge_responses(999, None).await.unwrap(), 0);
    assert_eq!(store.purge_responses(1000, None).await.unwrap(), 1);
    assert_eq!(store.response_count().await.unwrap(), 1);
    assert_eq!(store.get_response("resp_short", 0).await.unwrap(), None);
    assert_eq!(store.find_item("msg_s", 0).await.unwrap(), None);
    assert_eq!(fx.rows_in("response_items").await.unwrap_or(1), 1);
    assert_eq!(store.purge_responses(1000, None).await.unwrap(), 0);
}

async fn size_bound_purges_oldest_first(fx: &Fixture) {
    let store = &fx.store;
    // Sizes differ; two share a creation time, so the id breaks the tie. Written out of order.
    let mut all: Vec<StoredResponse> = (0..8)
        .map(|i| {
            let created = [50, 10, 30, 30, 70, 20, 60, 40][i];
            let pad = "p".repeat(100 * (i + 1));
            response(
                &format!("resp_{i}"),
                created,
                vec![message(&format!("msg_{i}"), &pad)],
                vec![],
            )
        })
        .collect();
    store.put_responses(&all).await.unwrap();
    all.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
    let total: u64 = all.iter().map(size_of).sum();
    assert_eq!(store.purge_responses(0, Some(total)).await.unwrap(), 0);
    assert_eq!(store.response_count().await.unwrap(), 8);

    // One byte under: exactly the oldest goes.
    assert_eq!(store.purge_responses(0, Some(total - 1)).await.unwrap(), 1);
    assert_eq!(store.get_response(&all[0].id, 0).await.unwrap(), None);
    assert_eq!(store.find_item("msg_1", 0).await.unwrap(), None);

    // A bound between: the fewest oldest go that bring the rest under it.
    let left = &all[1..];
    let bound = left[3..].iter().map(size_of).sum::<u64>() + size_of(&left[2]) / 2;
    assert_eq!(store.purge_responses(0, Some(bound)).await.unwrap(), 3);
    let mut kept = Vec::new();
    for r in left {
        if store.get_response(&r.id, 0).await.unwrap().is_some() {
            kept.push(r.id.clone());
        }
    }
    let newest: Vec<String> = left[3..].iter().map(|r| r.id.clone()).collect();
    assert_eq!(kept, newest);
    assert!(left[3..].iter().map(size_of).sum::<u64>() <= bound);

    // Expired ones go first and count toward the total deleted.
    assert_eq!(
        store
            .purge_responses(i64::MAX, Some(u64::MAX))
            .await
            .unwrap(),
        4
    );
    assert_eq!(store.response_count().await.unwrap(), 0);
    store.put_responses(&all[..2]).await.unwrap();
    assert_eq!(store.purge_responses(0, Some(0)).await.unwrap(), 2);
    assert_eq!(fx.rows_in("response_items").await.unwrap_or(0), 0);
}

async fn delete_removes_the_response_and_its_items(fx: &Fixture) {
    let store = &fx.store;
    let a = response(
        "resp_a",
        1,
        vec![message("msg_a", "a"), message("msg_shared", "x")],
        vec![message("msg_a_out", "o")],
    );
    let b = response("resp_b", 2, vec![message("msg_shared", "x")], vec![]);
    store.put_responses(&[a, b.clone()]).await.unwrap();
    assert!(store.delete_response("resp_a").await.unwrap());
    assert_eq!(store.get_response("resp_a", 0).await.unwrap(), None);
    assert_eq!(store.find_item("msg_a", 0).await.unwrap(), None);
    assert_eq!(store.find_item("msg_a_out", 0).await.unwrap(), None);
    // The item another response claimed since is that response's, and stays.
    assert_eq!(
        store.find_item("msg_shared", 0).await.unwrap().unwrap().0,
        "resp_b"
    );
    assert!(!store.delete_response("resp_a").await.unwrap());
    assert_eq!(store.response_count().await.unwrap(), 1);
    assert_eq!(fx.rows_in("responses").await.unwrap_or(1), 1);
    assert_eq!(fx.rows_in("response_items").await.unwrap_or(1), 1);
    assert_eq!(store.get_response("resp_b", 0).await.unwrap(), Some(b));
    // Expired but not purged: still deleted, and reported as having been there.
    let mut gone = response("resp_old", 1, vec![], vec![]);
    gone.expires_ms = 2;
    store.put_responses(&[gone]).await.unwrap();
    assert!(store.delete_response("resp_old").await.unwrap());
}

async fn response_writer_flushes_and_counts_drops(fx: &Fixture) {
    let store = Arc::new(fx.store.clone());
    // A tiny queue the task will not touch for a minute: what does not fit is refused.
    let options = WriterOptions {
        capacity: 2,
        batch_size: 100,
        flush_interval: Duration::from_secs(60),
        ..fast_options()
    };
    let (writer, task) = spawn_response_writer(Arc::clone(&store), options);
    let sent: Vec<bool> = (0..5)
        .map(|i| writer.try_send(response(&format!("resp_q{i}"), i, vec![], vec![])))
        .collect();
    assert_eq!(sent, [true, true, false, false, false]);
    assert_eq!(writer.dropped(), 3);
    let late = writer.clone();
    // Closing flushes what is held, without waiting for the interval.
    let stats = tokio::time::timeout(
        Duration::from_secs(10),
        writer.close(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    task.await.unwrap();
    assert_eq!((stats.written, stats.dropped, stats.backlog), (2, 3, 0));
    assert!(store.get_response("resp_q1", 0).await.unwrap().is_some());
    assert_eq!(store.response_count().await.unwrap(), 2);
    assert!(!late.try_send(response("resp_late", 0, vec![], vec![])));
    assert_eq!(late.dropped(), 4);

    // A full batch is written at once, the interval notwithstanding...
    let options = WriterOptions {
        capacity: 100,
        batch_size: 3,
        flush_interval: Duration::from_secs(60),
        ..fast_options()
    };
    let (writer, task) = spawn_response_writer(Arc::clone(&store), options);
    for i in 0..3 {
        assert!(writer.try_send(response(
            &format!("resp_b{i}"),
            i,
            vec![message(&format!("msg_b{i}"), "b")],
            vec![]
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.response_count().await.unwrap() < 5 {
        assert!(Instant::now() < deadline, "a full batch was not written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(store.find_item("msg_b2", 0).await.unwrap().is_some());
    writer.close(Duration::from_secs(30)).await;
    task.await.unwrap();

    // ...and a partial one once the interval has passed.
    let (writer, task) = spawn_response_writer(Arc::clone(&store), fast_options());
    assert!(writer.try_send(response("resp_i", 0, vec![], vec![])));
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.stats().written < 1 {
        assert!(Instant::now() < deadline, "a partial batch was not written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store.response_count().await.unwrap(), 6);
    writer.close(Duration::from_secs(30)).await;
    task.await.unwrap();
}

/// SQLite file only: a deleted response's content is overwritten in the file (`secure_delete`),
/// not left in free space for anyone reading the file.
async fn sqlite_delete_overwrites_the_content(fx: &Fixture) {
    let Target::Dir(dir, _) = &fx.target else {
        return;
    };
    let path = dir.join("usage.db");
    // The main file and any WAL, as someone with the disk would read them.
    let file_holds = |needle: &str| {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(dir.join("usage.db-wal")).unwrap_or_default());
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    let marker = format!("SECRET-{}", unique());
    let mut secret = response(
        "resp_secret",
        1,
        vec![message("msg_secret", &marker)],
        vec![message("msg_secret_out", &format!("small {marker}"))],
    );
    // Both a row that fits in its page and one that spills to overflow pages.
    secret.replay = json!({"big": format!("{marker}{}", "y".repeat(20_000))});
    let neighbours: Vec<StoredResponse> = (0..20)
        .map(|i| {
            response(
                &format!("resp_n{i}"),
                2 + i,
                vec![message(&format!("msg_n{i}"), "n")],
                vec![],
            )
        })
        .collect();
    fx.store.put_responses(&neighbours[..10]).await.unwrap();
    fx.store.put_responses(&[secret]).await.unwrap();
    fx.store.put_responses(&neighbours[10..]).await.unwrap();
    // Closing the last connection checkpoints the WAL into the file.
    fx.store.close().await;
    assert!(
        file_holds(&marker),
        "the marker should be in the file before the delete"
    );

    let store = fx.reconnect().await.unwrap();
    assert!(store.delete_response("resp_secret").await.unwrap());
    assert_eq!(store.response_count().await.unwrap(), 20);
    store.close().await;
    assert!(
        !file_holds(&marker),
        "the deleted content is still in the database file"
    );
}
