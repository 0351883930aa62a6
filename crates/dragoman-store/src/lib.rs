//! Persistence of usage records, tenancy documents and stored Responses API calls: SQLite
//! (embedded default) or PostgreSQL behind one `Store`, migrations embedded in the binary,
//! batching background writers that never block the request path, and the queries behind the
//! spend API.
//!
//! The `responses` table keeps every answered Responses API call (what the client sent and
//! received, plus what replaying the turn needs) and `response_items` indexes their items by
//! id, so `previous_response_id` and `item_reference` work on any upstream; see
//! [`StoredResponse`], [`Store::put_responses`] and [`spawn_response_writer`]. A deleted
//! response is really deleted: SQLite runs with `secure_delete` on, so its bytes are
//! overwritten in the file.
//!
//! URLs: `sqlite://PATH` (file and parent directory created if missing; WAL,
//! synchronous=NORMAL, secure_delete, 5 s busy timeout), `sqlite::memory:` (one connection,
//! gone with the store), `postgres://…` / `postgresql://…`. A PostgreSQL schema is chosen with
//! [`Store::connect_with_schema`] or `?options=-csearch_path%3DNAME` in the URL.

mod error;
mod query;
mod responses;
mod sqlite;
mod store;
mod writer;

pub use error::{StoreError, redact_url};
pub use query::{GroupBy, LogQuery, SummaryRow};
pub use responses::StoredResponse;
pub use store::{Doc, Store};
pub use writer::{
    ResponseWriter, Sink, Writer, WriterOptions, WriterStats, spawn_response_writer, spawn_writer,
};
