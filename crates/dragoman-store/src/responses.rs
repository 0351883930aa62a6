//! The Responses store: every answered OpenAI Responses API call, kept so that
//! `previous_response_id` and `item_reference` work on any upstream (the gateway replays the
//! stored turns to upstreams that keep no state), and so `GET`/`DELETE /v1/responses/{id}` and
//! `GET /v1/responses/{id}/input_items` can be served.
//!
//! JSON is stored as text on both backends: the bytes the size bound counts are the bytes
//! stored, and nothing normalises what the client sent or received (PostgreSQL's `jsonb` would
//! reorder keys and refuse `\u0000`).
//!
//! Deleting really deletes. SQLite runs with `secure_delete` on (set at connect, in
//! `sqlite.rs`), so a deleted or replaced row's bytes are overwritten in the file, not left in
//! free space. PostgreSQL deletes the rows; the dead tuples' space is reclaimed, and in time
//! overwritten, by autovacuum.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::StoreError;
use crate::store::{Backend, Store, pg_error};

/// One stored response, as the client saw it, plus what replaying it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response id the client saw (`resp_…`).
    pub id: String,
    /// Who may read it: a virtual key's hash, or `master`. The store only keeps it; checking
    /// it is the gateway's business.
    pub owner: String,
    pub created_ms: i64,
    /// From this instant on (`now_ms >= expires_ms`) it is gone for every reader, purged or not.
    pub expires_ms: i64,
    /// The model group the client named.
    pub model: String,
    /// The deployment id that answered.
    pub deployment: String,
    /// `responses`, `anthropic`, `chat`, `gemini` or `bedrock`.
    pub upstream_dialect: String,
    pub previous_response_id: Option<String>,
    /// The input items of this call, as the client sent them (each may have an `id`).
    pub input_items: Vec<Value>,
    /// The response object the client received (its `output` array holds items with ids).
    pub response: Value,
    /// Opaque to the store: what the gateway needs to replay this turn.
    pub replay: Value,
}

/// A response as the columns take it: JSON serialised once, off the SQLite thread, and the
/// items to index beside it.
pub(crate) struct ResponseRow {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) size_bytes: i64,
    pub(crate) model: String,
    pub(crate) deployment: String,
    pub(crate) upstream_dialect: String,
    pub(crate) previous_response_id: Option<String>,
    pub(crate) input_items: String,
    pub(crate) response: String,
    pub(crate) replay: String,
    /// (item id, item JSON), input items first, then output items, as they appear: when one id
    /// appears twice the later claim wins, as it does across responses.
    pub(crate) items: Vec<(String, String)>,
}

impl ResponseRow {
    pub(crate) fn of(r: &StoredResponse, backend: &'static str) -> Result<ResponseRow, StoreError> {
        let input_items = to_json(&r.input_items, &r.id, backend)?;
        let response = to_json(&r.response, &r.id, backend)?;
        let replay = to_json(&r.replay, &r.id, backend)?;
        let outputs = r
            .response
            .get("output")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut items = Vec::new();
        for item in r.input_items.iter().chain(outputs) {
            if let Some(Value::String(id)) = item.get("id") {
                items.push((id.clone(), to_json(item, &r.id, backend)?));
            }
        }
        // The item rows are stored because of this response, so they count toward its size.
        let size = input_items.len()
            + response.len()
            + replay.len()
            + items.iter().map(|(_, item)| item.len()).sum::<usize>();
        Ok(ResponseRow {
            id: r.id.clone(),
            owner: r.owner.clone(),
            created_ms: r.created_ms,
            expires_ms: r.expires_ms,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            model: r.model.clone(),
            deployment: r.deployment.clone(),
            upstream_dialect: r.upstream_dialect.clone(),
            previous_response_id: r.previous_response_id.clone(),
            input_items,
            response,
            replay,
            items,
        })
    }
}

/// Serialising a `Value` cannot fail (its keys are strings); the error is kept only so that
/// nothing here can panic.
fn to_json<T: serde::Serialize>(
    v: &T,
    id: &str,
    backend: &'static str,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::InvalidArgument {
        backend,
        reason: format!("response `{id}` cannot be serialised: {e}"),
    })
}

/// A row as stored, before its JSON is parsed.
#[derive(sqlx::FromRow)]
pub(crate) struct RawResponse {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) created_ms: i64,
    pub(crate) expires_ms: i64,
    pub(crate) model: String,
    pub(crate) deployment: String,
    pub(crate) upstream_dialect: String,
    pub(crate) previous_response_id: Option<String>,
    pub(crate) input_items: String,
    pub(crate) response: String,
    pub(crate) replay: String,
}

impl RawResponse {
    pub(crate) fn into_stored(self, backend: &'static str) -> Result<StoredResponse, StoreError> {
        let id = self.id;
        let parse = |column: &str, text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| StoreError::Malformed {
                backend,
                request_id: id.clone(),
                reason: format!("column {column}: {e}"),
            })
        };
        let input_items = match parse("input_items", &self.input_items)? {
            Value::Array(items) => items,
            _ => {
                return Err(StoreError::Malformed {
                    backend,
                    request_id: id,
                    reason: "column input_items: not a JSON array".to_owned(),
                });
            }
        };
        let response = parse("response", &self.response)?;
        let replay = parse("replay", &self.replay)?;
        Ok(StoredResponse {
            id,
            owner: self.owner,
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            model: self.model,
            deployment: self.deployment,
            upstream_dialect: self.upstream_dialect,
            previous_response_id: self.previous_response_id,
            input_items,
            response,
            replay,
        })
    }
}

pub(crate) fn parse_item(
    backend: &'static str,
    item_id: &str,
    text: &str,
) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Malformed {
        backend,
        request_id: item_id.to_owned(),
        reason: format!("column item: {e}"),
    })
}

// Statements written once for both backends (`$N` placeholders; SQLite's side swaps in `?N`).

const UPSERT_SET: &str = " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, \
     created_ms = excluded.created_ms, expires_ms = excluded.expires_ms, \
     size_bytes = excluded.size_bytes, model = excluded.model, \
     deployment = excluded.deployment, upstream_dialect = excluded.upstream_dialect, \
     previous_response_id = excluded.previous_response_id, input_items = excluded.input_items, \
     response = excluded.response, replay = excluded.replay";

const INSERT_COLUMNS: &str = "INSERT INTO responses (id, owner, created_ms, expires_ms, \
     size_bytes, model, deployment, upstream_dialect, previous_response_id, input_items, \
     response, replay)";

pub(crate) fn upsert_response_sql() -> String {
    format!(
        "{INSERT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12){UPSERT_SET}"
    )
}

pub(crate) const UPSERT_ITEM: &str = "INSERT INTO response_items (item_id, response_id, item) \
     VALUES ($1, $2, $3) ON CONFLICT (item_id) DO UPDATE SET \
     response_id = excluded.response_id, item = excluded.item";

pub(crate) const DELETE_ITEMS_OF: &str = "DELETE FROM response_items WHERE response_id = $1";

pub(crate) const DELETE_RESPONSE: &str = "DELETE FROM responses WHERE id = $1";

pub(crate) const SELECT_RESPONSE: &str = "SELECT id, owner, created_ms, expires_ms, model, \
     deployment, upstream_dialect, previous_response_id, input_items, response, replay \
     FROM responses WHERE id = $1 AND expires_ms > $2";

pub(crate) const FIND_ITEM: &str = "SELECT i.response_id, r.owner, i.item \
     FROM response_items i JOIN responses r ON r.id = i.response_id \
     WHERE i.item_id = $1 AND r.expires_ms > $2";

pub(crate) const COUNT_RESPONSES: &str = "SELECT COUNT(*) FROM responses";

/// The ids to delete, oldest first, so that what is left totals at most `$1` bytes: a row goes
/// while the rows before it have not yet freed the excess. Ties in `created_ms` go by id, so
/// every backend deletes the same rows.
pub(crate) const OVER_BUDGET: &str = "SELECT id FROM (SELECT id, \
     SUM(size_bytes) OVER (ORDER BY created_ms, id ROWS UNBOUNDED PRECEDING) - size_bytes \
     AS before, SUM(size_bytes) OVER () AS total FROM responses) ranked \
     WHERE before < total - $1";

/// A response is visible while `now_ms < expires_ms`, so this is the complement.
pub(crate) const EXPIRED: &str = "SELECT id FROM responses WHERE expires_ms <= $1";

/// Bytes past `i64::MAX` cannot be stored anyway; clamping keeps the comparison meaningful.
pub(crate) fn budget(max_bytes: u64) -> i64 {
    i64::try_from(max_bytes).unwrap_or(i64::MAX)
}

impl Store {
    /// Inserts or replaces `batch` (by id) in one transaction, and indexes every item with a
    /// string `id` among each response's `input_items` and `response.output` (item id →
    /// response id and the item). A replaced response's old index rows go first, so an item it
    /// no longer holds stops resolving. When two responses claim one item id, the one written
    /// later wins (later in the batch, or in a later batch).
    pub async fn put_responses(&self, batch: &[StoredResponse]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let backend = self.backend_name();
        let rows = batch
            .iter()
            .map(|r| ResponseRow::of(r, backend))
            .collect::<Result<Vec<_>, _>>()?;
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.put_responses(rows).await,
            Backend::Postgres(pool) => pg_put(pool, &rows).await,
        }
    }

    /// The response if it is stored and not expired at `now_ms`.
    pub async fn get_response(
        &self,
        id: &str,
        now_ms: i64,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let raw = match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.get_response(id.to_owned(), now_ms).await?,
            Backend::Postgres(pool) => sqlx::query_as::<_, RawResponse>(SELECT_RESPONSE)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await
                .map_err(|source| pg_error("reading a response", source))?,
        };
        let backend = self.backend_name();
        raw.map(|r| r.into_stored(backend)).transpose()
    }

    /// An indexed item by its id, if the response holding it is stored and not expired at
    /// `now_ms`: (response id, owner, the item).
    pub async fn find_item(
        &self,
        item_id: &str,
        now_ms: i64,
    ) -> Result<Option<(String, String, Value)>, StoreError> {
        let found = match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.find_item(item_id.to_owned(), now_ms).await?,
            Backend::Postgres(pool) => sqlx::query_as::<_, (String, String, String)>(FIND_ITEM)
                .bind(item_id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await
                .map_err(|source| pg_error("finding a response item", source))?,
        };
        let backend = self.backend_name();
        found
            .map(|(response_id, owner, item)| {
                parse_item(backend, item_id, &item).map(|item| (response_id, owner, item))
            })
            .transpose()
    }

    /// Deletes the response and the item rows it holds, in one transaction; true when it was
    /// stored (expired or not). On SQLite the bytes are overwritten in the file
    /// (`secure_delete`); on PostgreSQL the rows are deleted and autovacuum reclaims the space.
    pub async fn delete_response(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.delete_response(id.to_owned()).await,
            Backend::Postgres(pool) => {
                let fail = |source| pg_error("deleting a response", source);
                let mut tx = pool.begin().await.map_err(fail)?;
                let gone = pg_delete(&mut tx, &[id]).await.map_err(fail)?;
                tx.commit().await.map_err(fail)?;
                Ok(gone > 0)
            }
        }
    }

    /// Deletes the responses expired at `now_ms`, then, with `max_bytes`, the oldest ones
    /// until what is left totals at most `max_bytes` (each response's size is the bytes of its
    /// JSON and of its item rows, kept in `size_bytes`); returns how many responses went.
    pub async fn purge_responses(
        &self,
        now_ms: i64,
        max_bytes: Option<u64>,
    ) -> Result<u64, StoreError> {
        let max_bytes = max_bytes.map(budget);
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.purge_responses(now_ms, max_bytes).await,
            Backend::Postgres(pool) => {
                let fail = |source| pg_error("purging responses", source);
                let mut tx = pool.begin().await.map_err(fail)?;
                let mut doomed: Vec<String> = sqlx::query_scalar(EXPIRED)
                    .bind(now_ms)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(fail)?;
                let mut deleted = pg_delete_owned(&mut tx, &doomed).await.map_err(fail)?;
                if let Some(max) = max_bytes {
                    doomed = sqlx::query_scalar(OVER_BUDGET)
                        .bind(max)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(fail)?;
                    deleted += pg_delete_owned(&mut tx, &doomed).await.map_err(fail)?;
                }
                tx.commit().await.map_err(fail)?;
                Ok(deleted)
            }
        }
    }

    /// How many responses are stored, expired ones not yet purged included.
    pub async fn response_count(&self) -> Result<i64, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.response_count().await,
            Backend::Postgres(pool) => sqlx::query_scalar::<_, i64>(COUNT_RESPONSES)
                .fetch_one(pool)
                .await
                .map_err(|source| pg_error("counting responses", source)),
        }
    }
}

/// One statement per table for the whole batch (arrays unnested), so a batch costs three round
/// trips however large. PostgreSQL refuses to upsert one key twice in a statement, so the
/// batch is first reduced to what writing it row by row would leave: each response's last
/// copy, in the order of those last copies, and each item id's last claim among them.
async fn pg_put(pool: &PgPool, rows: &[ResponseRow]) -> Result<(), StoreError> {
    let fail = |source| pg_error("storing responses", source);
    let mut seen = HashSet::new();
    let mut last: Vec<&ResponseRow> = rows
        .iter()
        .rev()
        .filter(|r| seen.insert(r.id.as_str()))
        .collect();
    last.reverse();
    let mut claims: HashMap<&str, (&str, &str)> = HashMap::new();
    for row in &last {
        for (item_id, item) in &row.items {
            claims.insert(item_id.as_str(), (row.id.as_str(), item.as_str()));
        }
    }
    // Key order, so that gateways writing overlapping batches take row locks in one order and
    // cannot deadlock each other.
    last.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let mut claims: Vec<(&str, (&str, &str))> = claims.into_iter().collect();
    claims.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let mut tx = pool.begin().await.map_err(fail)?;
    let ids: Vec<&str> = last.iter().map(|r| r.id.as_str()).collect();
    sqlx::query("DELETE FROM response_items WHERE response_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let sql = format!(
        "{INSERT_COLUMNS} SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], \
         $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
         $12::text[]){UPSERT_SET}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&ids)
        .bind(last.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>())
        .bind(last.iter().map(|r| r.created_ms).collect::<Vec<_>>())
        .bind(last.iter().map(|r| r.expires_ms).collect::<Vec<_>>())
        .bind(last.iter().map(|r| r.size_bytes).collect::<Vec<_>>())
        .bind(last.iter().map(|r| r.model.as_str()).collect::<Vec<_>>())
        .bind(
            last.iter()
                .map(|r| r.deployment.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            last.iter()
                .map(|r| r.upstream_dialect.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            last.iter()
                .map(|r| r.previous_response_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            last.iter()
                .map(|r| r.input_items.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(last.iter().map(|r| r.response.as_str()).collect::<Vec<_>>())
        .bind(last.iter().map(|r| r.replay.as_str()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    if !claims.is_empty() {
        sqlx::query(
            "INSERT INTO response_items (item_id, response_id, item) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
             ON CONFLICT (item_id) DO UPDATE SET \
             response_id = excluded.response_id, item = excluded.item",
        )
        .bind(claims.iter().map(|c| c.0).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.1.0).collect::<Vec<_>>())
        .bind(claims.iter().map(|c| c.1.1).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

/// Deletes the responses `ids` and the item rows they hold; returns how many responses went.
async fn pg_delete(tx: &mut Transaction<'_, Postgres>, ids: &[&str]) -> sqlx::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    sqlx::query("DELETE FROM response_items WHERE response_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    let done = sqlx::query("DELETE FROM responses WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}

async fn pg_delete_owned(tx: &mut Transaction<'_, Postgres>, ids: &[String]) -> sqlx::Result<u64> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    pg_delete(tx, &ids).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(input_items: Vec<Value>, response: Value) -> StoredResponse {
        StoredResponse {
            id: "resp_1".to_owned(),
            owner: "master".to_owned(),
            created_ms: 1,
            expires_ms: 2,
            model: "m".to_owned(),
            deployment: "d".to_owned(),
            upstream_dialect: "chat".to_owned(),
            previous_response_id: None,
            input_items,
            response,
            replay: json!(null),
        }
    }

    #[test]
    fn only_items_with_a_string_id_are_indexed_and_counted() {
        let r = stored(
            vec![
                json!({"id": "msg_in", "type": "message"}),
                json!({"type": "message"}),
                json!({"id": 7}),
                json!("plain"),
            ],
            json!({"output": [{"id": "msg_out"}, {"type": "reasoning"}]}),
        );
        let row = ResponseRow::of(&r, "test").unwrap();
        let ids: Vec<&str> = row.items.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["msg_in", "msg_out"]);
        let json_bytes = row.input_items.len() + row.response.len() + row.replay.len();
        let item_bytes: usize = row.items.iter().map(|(_, i)| i.len()).sum();
        assert_eq!(row.size_bytes as usize, json_bytes + item_bytes);
    }

    #[test]
    fn a_response_without_output_indexes_its_input_only() {
        let r = stored(vec![json!({"id": "a"})], json!({"output": "not an array"}));
        assert_eq!(ResponseRow::of(&r, "test").unwrap().items.len(), 1);
    }
}
