//! Persistence of usage records: SQLite (embedded default) or PostgreSQL behind one `Store`,
//! migrations embedded in the binary, a batching background writer that never blocks the
//! request path, and the queries behind the spend API.
//!
//! URLs: `sqlite://PATH` (file and parent directory created if missing; WAL,
//! synchronous=NORMAL, 5 s busy timeout), `sqlite::memory:` (one connection, gone with the
//! store), `postgres://…` / `postgresql://…`. A PostgreSQL schema is chosen with
//! [`Store::connect_with_schema`] or `?options=-csearch_path%3DNAME` in the URL.

mod error;
mod query;
mod sqlite;
mod store;
mod writer;

pub use error::{StoreError, redact_url};
pub use query::{GroupBy, LogQuery, SummaryRow};
pub use store::{Doc, Store};
pub use writer::{Sink, Writer, WriterOptions, WriterStats, spawn_writer};
