//! The JSON log line (`DRAGOMAN_LOG_FORMAT=json`): one object per event, its fields at the top
//! level, written straight into the line.
//!
//! tracing-subscriber's own JSON format serialises each event through serde's map machinery
//! (a visitor per field, a `serde_json::Value` per debug field); with one line per request that
//! was the largest cost of the observability path, more than building and exporting its spans.
//! The shape is the same: `timestamp`, `level`, `message`, then the fields.

use std::fmt;

use dragoman_model::write_json_str;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of the JSON logs.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(512);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        let mut v = Fields {
            line: &mut line,
            scratch: String::new(),
        };
        event.record(&mut v);
        line.push_str("}\n");
        w.write_str(&line)
    }
}

struct Fields<'a> {
    line: &'a mut String,
    scratch: String,
}

impl Fields<'_> {
    fn key(&mut self, f: &Field) {
        self.line.push(',');
        write_json_str(self.line, f.name());
        self.line.push(':');
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.key(f);
        write_json_str(self.line, v);
    }

    fn record_u64(&mut self, f: &Field, v: u64) {
        self.key(f);
        self.line.push_str(itoa::Buffer::new().format(v));
    }

    fn record_i64(&mut self, f: &Field, v: i64) {
        self.key(f);
        self.line.push_str(itoa::Buffer::new().format(v));
    }

    fn record_bool(&mut self, f: &Field, v: bool) {
        self.key(f);
        self.line.push_str(if v { "true" } else { "false" });
    }

    fn record_f64(&mut self, f: &Field, v: f64) {
        self.key(f);
        if v.is_finite() {
            use fmt::Write;
            let _ = write!(self.line, "{v}");
        } else {
            self.line.push_str("null");
        }
    }

    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        use fmt::Write;
        self.scratch.clear();
        let _ = write!(self.scratch, "{v:?}");
        self.key(f);
        write_json_str(self.line, &self.scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn every_kind_of_field_is_valid_json_at_the_top_level() {
        let lines = Lines::default();
        let w = lines.clone();
        let sub = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || w.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            let quoted = "say \"hi\"\n\u{1}";
            tracing::info!(
                s = "plain",
                quoted,
                shown = %quoted,
                n = 7u64,
                neg = -3i64,
                yes = true,
                x = 1.5f64,
                nan = f64::NAN,
                none = Option::<&str>::None,
                "request done"
            );
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request done");
        assert_eq!(v["s"], "plain");
        assert_eq!(v["quoted"], "say \"hi\"\n\u{1}");
        assert_eq!(v["shown"], "say \"hi\"\n\u{1}");
        assert_eq!(v["n"], 7);
        assert_eq!(v["neg"], -3);
        assert_eq!(v["yes"], true);
        assert_eq!(v["x"], 1.5);
        assert!(v["nan"].is_null());
        assert!(v.get("none").is_none());
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
    }
}
