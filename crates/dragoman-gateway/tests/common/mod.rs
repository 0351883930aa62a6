//! What the gateway's integration tests have in common: serving a gateway on a free port, and,
//! for those that share a real PostgreSQL between instances, where it is, a schema of each
//! test's own, and dropping that schema at the end.
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

/// Serves `gw` on a free loopback port until the test ends; its base URL.
pub async fn serve(gw: std::sync::Arc<dragoman_gateway::Gateway>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(dragoman_gateway::serve(
        gw,
        listener,
        std::future::pending(),
    ));
    url
}
