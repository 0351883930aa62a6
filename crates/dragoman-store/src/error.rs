//! The store's one error type, whose messages name the backend and the operation so an
//! operator can act on them, and never echo a password from a connection URL.

/// The driver's own error (sqlx for PostgreSQL, rusqlite or I/O for SQLite), boxed because the
/// backends' drivers differ and callers only display or log it.
pub(crate) type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported backend or cannot be parsed.
    #[error("invalid store URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL with any `user:password@` removed.
        url: String,
        reason: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot connect to {backend} at `{url}`: {source}")]
    Connect {
        backend: &'static str,
        /// The URL with any `user:password@` removed.
        url: String,
        #[source]
        source: Source,
    },
    /// Applying the embedded migrations failed.
    #[error("{backend}: applying migrations failed: {source}")]
    Migrate {
        backend: &'static str,
        #[source]
        source: Source,
    },
    /// A statement failed.
    #[error("{backend}: {operation} failed: {source}")]
    Query {
        backend: &'static str,
        operation: &'static str,
        #[source]
        source: Source,
    },
    /// A stored row holds a value the record type cannot take (written by something else, or
    /// a newer version).
    #[error("{backend}: stored record `{request_id}` is malformed: {reason}")]
    Malformed {
        backend: &'static str,
        request_id: String,
        reason: String,
    },
    /// A caller-side argument the store refuses (e.g. a schema name that is not a plain
    /// identifier).
    #[error("{backend}: {reason}")]
    InvalidArgument {
        backend: &'static str,
        reason: String,
    },
}

/// The URL without `user:password@`, safe to log or to show in an error.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..rest_start], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn strips_credentials_only() {
        assert_eq!(
            redact_url("postgres://u:s3cret@db:5432/x?sslmode=require"),
            "postgres://db:5432/x?sslmode=require"
        );
        assert_eq!(redact_url("postgresql://u@db/x"), "postgresql://db/x");
        assert_eq!(redact_url("postgres://db/x?a=b@c"), "postgres://db/x?a=b@c");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("postgres://u:p@ss@db/x"), "postgres://db/x");
    }
}
