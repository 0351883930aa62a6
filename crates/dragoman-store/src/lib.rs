//! Persistence of usage records: SQLite (embedded default) or PostgreSQL behind one `Store`,
//! migrations embedded in the binary, a batching background writer that never blocks the
//! request path, and the queries behind the spend API.

mod error;
mod query;
mod store;
mod writer;

pub use error::{StoreError, redact_url};
pub use query::{GroupBy, LogQuery, SummaryRow};
pub use store::Store;
pub use writer::{Sink, Writer, WriterOptions, WriterStats, spawn_writer};
