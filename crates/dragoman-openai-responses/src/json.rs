//! JSON text written straight into a `String`, for the stream encoder's hot path: building a
//! `serde_json::Value` map per event only to serialize it again costs more than the event.
//! Keys come out in the order serde_json's `Map` would keep them (sorted by default, as
//! written with `preserve_order`), so the text is exactly what `Value::to_string` gave before.

use std::fmt::Write as _;
use std::sync::OnceLock;

use serde_json::Value;

/// One field value of an object being written.
pub(crate) enum F<'a> {
    Str(&'a str),
    U64(u64),
    Value(&'a Value),
    Array(&'a [Value]),
    /// JSON text already serialized (a literal, or an object written earlier).
    Raw(&'a str),
}

/// Whether `Map` sorts its keys. The workspace may switch serde_json's `preserve_order` on or
/// off, and the bytes must follow whichever `Value` would write.
fn sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut m = serde_json::Map::new();
        m.insert("b".into(), Value::Null);
        m.insert("a".into(), Value::Null);
        m.keys().next().is_some_and(|k| k == "a")
    })
}

/// Writes `{...}`. Callers list `fields` in insertion order; they are sorted here when `Map`
/// would sort them.
pub(crate) fn object<const N: usize>(out: &mut String, mut fields: [(&str, F<'_>); N]) {
    if sorted() {
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    out.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, k, v);
    }
    out.push('}');
}

/// An event's data: `type` and `sequence_number`, then `fields` (in insertion order, or all
/// sorted, as `Map` would have them).
pub(crate) fn event<const N: usize>(ty: &str, seq: u64, mut fields: [(&str, F<'_>); N]) -> String {
    let mut out = String::with_capacity(128);
    out.push('{');
    let sorted = sorted();
    if sorted {
        fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    }
    let mut extra = [("sequence_number", F::U64(seq)), ("type", F::Str(ty))];
    if !sorted {
        extra.swap(0, 1);
    }
    let mut extra = extra.into_iter().peekable();
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push(',');
        }
        first = false;
    };
    for (k, v) in &fields {
        while let Some((ek, ev)) = extra.next_if(|(ek, _)| !sorted || *ek < *k) {
            sep(&mut out);
            field(&mut out, ek, &ev);
        }
        sep(&mut out);
        field(&mut out, k, v);
    }
    for (ek, ev) in extra {
        sep(&mut out);
        field(&mut out, ek, &ev);
    }
    out.push('}');
    out
}

fn field(out: &mut String, k: &str, v: &F<'_>) {
    string(out, k);
    out.push(':');
    match v {
        F::Str(s) => string(out, s),
        F::U64(n) => {
            let _ = write!(out, "{n}");
        }
        // `Value`'s Display is its compact JSON text, written without an intermediate buffer.
        F::Value(v) => {
            let _ = write!(out, "{v}");
        }
        F::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{v}");
            }
            out.push(']');
        }
        F::Raw(r) => out.push_str(r),
    }
}

/// A JSON string literal with serde_json's escaping (the shared routine of `dragoman_model`).
pub(crate) fn string(out: &mut String, s: &str) {
    dragoman_model::write_json_str(out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matches_value_serialization() {
        let nasty = "a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f}é😀</script>";
        let v = json!({"x": [1, {"b": 2, "a": null}]});
        let got = event(
            "response.output_text.delta",
            7,
            [
                ("item_id", F::Str("msg_1")),
                ("delta", F::Str(nasty)),
                ("output_index", F::U64(3)),
                ("summary_index", F::U64(0)),
                ("text", F::Value(&v)),
                ("logprobs", F::Raw("[]")),
                ("content_index", F::U64(0)),
            ],
        );
        let want = json!({
            "type": "response.output_text.delta", "sequence_number": 7, "item_id": "msg_1",
            "delta": nasty, "output_index": 3, "summary_index": 0, "text": v, "logprobs": [],
            "content_index": 0,
        })
        .to_string();
        assert_eq!(got, want);
        let mut o = String::new();
        object(&mut o, [("type", F::Str("t")), ("text", F::Str(nasty))]);
        assert_eq!(o, json!({"type": "t", "text": nasty}).to_string());
        for c in 0u8..0x80 {
            let s = char::from(c).to_string();
            let mut o = String::new();
            string(&mut o, &s);
            assert_eq!(o, Value::String(s).to_string());
        }
    }
}
