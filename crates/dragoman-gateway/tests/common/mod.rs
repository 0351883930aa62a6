//! What the tests that share a real PostgreSQL between gateway instances have in common: where
//! it is, a schema of each test's own, and dropping that schema at the end.
#![allow(clippy::unwrap_used, dead_code)]

/// `DRAGOMAN_TEST_POSTGRES_URL` (default the local server); `None` when set to `skip`.
pub fn pg_url() -> Option<String> {
    let url = std::env::var("DRAGOMAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    (url != "skip").then_some(url)
}

/// A schema name no other test run uses.
pub fn schema(prefix: &str) -> String {
    format!("{prefix}_{:012x}", fastrand::u64(..) >> 16)
}

pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();
}
