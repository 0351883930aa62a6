//! The few top-level fields the gateway itself reads from a request body (model, stream, …),
//! read without building a JSON tree, and the byte-level edits a passed-through body needs
//! (the model renamed, Chat's usage chunk asked for). A same-dialect request is therefore
//! forwarded as the client's own bytes, not re-serialized: cheaper, and nothing the client
//! wrote (key order, number spelling, unknown fields) can be changed by accident.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow, default)]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    prompt_cache_key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
}

/// What the gateway reads from a request body before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The requested model, when the body has it as a string.
    pub model: Option<String>,
    /// Where the model's JSON string sits in the body, quotes included.
    model_span: Option<Range<usize>>,
    pub stream: bool,
    /// `stream_options` is present (any value but null).
    has_stream_options: bool,
    /// `stream_options.include_usage` is `true`.
    pub include_usage: bool,
    /// `previous_response_id` is present and not null.
    pub previous_response_id: bool,
    /// A hash of what the client says identifies its conversation or user: OpenAI's
    /// `prompt_cache_key`, else Anthropic's `metadata` (Claude Code puts its session there),
    /// else OpenAI's `user`. Sticky routing keys on it.
    pub conversation: Option<u64>,
    /// Where `system` (or `instructions`) and `messages` (or `input`) sit in the body, for
    /// [`Envelope::prefix`].
    head_span: Option<Range<usize>>,
    turns_span: Option<Range<usize>>,
    /// The most output the client allows (`max_tokens`, `max_completion_tokens`,
    /// `max_output_tokens`): what a budget reserves for.
    pub max_output: Option<u64>,
    /// The end user the request names: OpenAI's `user`, or Anthropic's `metadata.user_id`.
    pub end_user: Option<String>,
}

/// Why a body is not a request at all.
#[derive(Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    NotAnObject,
    Json(String),
}

/// The byte range of `inner` inside `outer`, when `inner` really is a slice of it.
fn span_of(outer: &[u8], inner: &str) -> Option<Range<usize>> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    let end = start.checked_add(inner.len())?;
    (end <= outer.len() && &outer[start..end] == inner.as_bytes()).then_some(start..end)
}

impl Envelope {
    pub fn read(body: &[u8]) -> Result<Envelope, EnvelopeError> {
        // A derived struct would also accept a JSON array; requests are objects.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => Err(EnvelopeError::NotAnObject),
                Err(e) => Err(EnvelopeError::Json(e.to_string())),
            };
        }
        let f: Fields<'_> =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        let (model, model_span) = match f.model {
            Some(raw) if raw.get().starts_with('"') => (
                serde_json::from_str::<String>(raw.get()).ok(),
                span_of(body, raw.get()),
            ),
            _ => (None, None),
        };
        let include_usage = f.stream_options.is_some_and(|raw| {
            serde_json::from_str::<Value>(raw.get())
                .ok()
                .and_then(|v| v.get("include_usage")?.as_bool())
                .unwrap_or(false)
        });
        Ok(Envelope {
            model,
            model_span,
            stream: f.stream.is_some_and(|raw| raw.get() == "true"),
            has_stream_options: f.stream_options.is_some(),
            include_usage,
            previous_response_id: f.previous_response_id.is_some(),
            conversation: [f.prompt_cache_key, f.metadata, f.user]
                .into_iter()
                .flatten()
                .find(|raw| raw.get() != "null")
                .map(|raw| hash_bytes(raw.get().as_bytes())),
            head_span: f
                .system
                .or(f.instructions)
                .and_then(|r| span_of(body, r.get())),
            turns_span: f.messages.or(f.input).and_then(|r| span_of(body, r.get())),
            max_output: [f.max_tokens, f.max_completion_tokens, f.max_output_tokens]
                .into_iter()
                .flatten()
                .find_map(|raw| raw.get().parse::<u64>().ok()),
            end_user: f
                .user
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .or_else(|| {
                    #[derive(Deserialize)]
                    struct Meta {
                        #[serde(default)]
                        user_id: Option<String>,
                    }
                    f.metadata
                        .and_then(|raw| serde_json::from_str::<Meta>(raw.get()).ok())
                        .and_then(|m| m.user_id)
                })
                .filter(|u| !u.is_empty()),
        })
    }

    /// A hash of the prompt's stable prefix (system or instructions, and the first user
    /// turn), which every turn of one conversation repeats. Computed only when routing needs
    /// it (no client key, several deployments), and reading the turns only up to the first
    /// user one.
    pub fn prefix(&self, body: &[u8]) -> Option<u64> {
        let turns = std::str::from_utf8(body.get(self.turns_span.clone()?)?).ok()?;
        let first = first_user_turn(turns)?;
        let head = self
            .head_span
            .clone()
            .and_then(|r| body.get(r))
            .unwrap_or_default();
        Some(hash_bytes(head) ^ hash_bytes(first.as_bytes()).rotate_left(1))
    }

    /// The body to send upstream when client and upstream speak the same dialect: the
    /// client's bytes, with the model renamed to `upstream_model` and, when `want_usage`,
    /// `stream_options.include_usage` set. Untouched bytes are shared, not copied.
    pub fn passthrough_body(&self, body: &Bytes, upstream_model: &str, want_usage: bool) -> Bytes {
        let add_usage = want_usage && !self.include_usage;
        if add_usage && self.has_stream_options {
            // Rare: the client sent stream_options without include_usage. Edit the tree.
            return edited_tree(body, upstream_model, true);
        }
        let rename = self.model.as_deref() != Some(upstream_model);
        if !rename && !add_usage {
            return body.clone();
        }
        let Some(span) = self.model_span.clone() else {
            return edited_tree(body, upstream_model, add_usage);
        };
        let new_model = serde_json::to_string(upstream_model).unwrap_or_default();
        let mut out = Vec::with_capacity(body.len() + new_model.len() + 40);
        let open = body.iter().position(|b| *b == b'{').unwrap_or(0);
        out.extend_from_slice(&body[..=open]);
        if add_usage {
            // The object holds at least `model`, so a member follows the comma.
            out.extend_from_slice(br#""stream_options":{"include_usage":true},"#);
        }
        out.extend_from_slice(&body[open + 1..span.start]);
        if rename {
            out.extend_from_slice(new_model.as_bytes());
        } else {
            out.extend_from_slice(&body[span.clone()]);
        }
        out.extend_from_slice(&body[span.end..]);
        Bytes::from(out)
    }
}

/// The first element of the JSON array `turns` whose `role` is `user`. The walk stops there:
/// the visitor leaves the rest unread and the deserializer's complaint about it is ignored.
fn first_user_turn(turns: &str) -> Option<&str> {
    struct Walk<'a, 'f>(&'f mut Option<&'a str>);
    impl<'de, 'f> serde::de::Visitor<'de> for Walk<'de, 'f> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of turns")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            #[derive(Deserialize)]
            struct Role<'a> {
                #[serde(borrow, default)]
                role: Option<std::borrow::Cow<'a, str>>,
            }
            while let Some(raw) = seq.next_element::<&'de RawValue>()? {
                if serde_json::from_str::<Role<'_>>(raw.get())
                    .is_ok_and(|r| r.role.as_deref() == Some("user"))
                {
                    *self.0 = Some(raw.get());
                    break;
                }
            }
            Ok(())
        }
    }
    let mut found = None;
    let mut de = serde_json::Deserializer::from_str(turns);
    let _ = serde::Deserializer::deserialize_seq(&mut de, Walk(&mut found));
    found
}

/// A stable 64-bit hash of at most the first 1 KiB of `b` (enough to tell conversations
/// apart; no client value is hashed in full on the request path).
pub fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    b[..b.len().min(1024)].hash(&mut h);
    h.finish()
}

/// The slow path for edits the byte splice does not cover.
fn edited_tree(body: &[u8], upstream_model: &str, add_usage: bool) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return Bytes::copy_from_slice(body);
    };
    if let Some(o) = v.as_object_mut() {
        o.insert("model".into(), Value::String(upstream_model.to_owned()));
        if add_usage {
            match o.get_mut("stream_options") {
                Some(Value::Object(so)) => {
                    so.insert("include_usage".into(), Value::Bool(true));
                }
                _ => {
                    o.insert(
                        "stream_options".into(),
                        serde_json::json!({"include_usage": true}),
                    );
                }
            }
        }
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn reads_the_fields_the_gateway_needs() {
        let e = Envelope::read(
            br#" {"messages":[{"model":"inner"}],"model":"gpt-\u00e9","stream":true,"stream_options":{"include_usage":true},"previous_response_id":"resp_1"}"#,
        )
        .unwrap();
        assert_eq!(e.model.as_deref(), Some("gpt-é"));
        assert!(e.stream && e.include_usage && e.previous_response_id);
        let e =
            Envelope::read(br#"{"model":7,"stream":"yes","previous_response_id":null}"#).unwrap();
        assert_eq!(e.model, None);
        assert!(!e.stream && !e.include_usage && !e.previous_response_id);
    }

    #[test]
    fn the_prompt_prefix_is_the_same_on_every_turn_of_a_conversation() {
        let turn1 = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"plan a trip"}]}"#;
        let turn3 = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"plan a trip"},{"role":"assistant","content":"where?"},{"role":"user","content":"Rome"}]}"#;
        let other = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"write a poem"}]}"#;
        let p = |b: &[u8]| Envelope::read(b).unwrap().prefix(b);
        assert!(p(turn1).is_some());
        assert_eq!(p(turn1), p(turn3));
        assert_ne!(p(turn1), p(other));
        // Responses: a string input has no turns to key on; a list does.
        assert_eq!(p(br#"{"model":"m","input":"hi"}"#), None);
        assert!(
            p(br#"{"model":"m","instructions":"x","input":[{"role":"user","content":"hi"}]}"#)
                .is_some()
        );
        // Messages that are not a list are the decoder's to refuse, not the envelope's.
        assert_eq!(p(br#"{"model":"m","messages":{"a":1}}"#), None);
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        assert_eq!(
            Envelope::read(br#"[{"model":"m"}]"#),
            Err(EnvelopeError::NotAnObject)
        );
        assert_eq!(Envelope::read(b"42"), Err(EnvelopeError::NotAnObject));
        assert!(matches!(
            Envelope::read(br#"{"model":"m","#),
            Err(EnvelopeError::Json(_))
        ));
        assert!(matches!(Envelope::read(b""), Err(EnvelopeError::Json(_))));
        assert!(matches!(
            Envelope::read(br#"{"model":"a","model":"b"}"#),
            Err(EnvelopeError::Json(_))
        ));
    }

    #[test]
    fn same_model_passes_the_same_bytes() {
        let body = Bytes::from_static(br#"{"model":"m", "temperature":1.50,"x":{"y":[1]}}"#);
        let e = Envelope::read(&body).unwrap();
        let out = e.passthrough_body(&body, "m", false);
        assert_eq!(out, body);
        assert_eq!(out.as_ptr(), body.as_ptr(), "shared, not copied");
    }

    #[test]
    fn rename_changes_only_the_model() {
        let body = Bytes::from_static(
            br#"{"messages":[{"role":"user","content":"model"}], "model" : "alias","temperature":1.50}"#,
        );
        let e = Envelope::read(&body).unwrap();
        let out = e.passthrough_body(&body, "gpt-\"4o\"", false);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"messages":[{"role":"user","content":"model"}], "model" : "gpt-\"4o\"","temperature":1.50}"#
        );
    }

    #[test]
    fn chat_streams_get_include_usage_whatever_the_client_sent() {
        for (body, kept) in [
            (r#"{"model":"a","stream":true}"#, None),
            (
                r#"{"model":"a","stream":true,"stream_options":{"include_usage":false,"k":1}}"#,
                Some(1),
            ),
            (
                r#"{"model":"a","stream":true,"stream_options":{"k":1}}"#,
                Some(1),
            ),
            (
                r#"{"model":"a","stream":true,"stream_options":{"include_usage":true,"k":1}}"#,
                Some(1),
            ),
        ] {
            let body = Bytes::from(body.to_owned());
            let e = Envelope::read(&body).unwrap();
            let out = json(&e.passthrough_body(&body, "up", true));
            assert_eq!(out["model"], "up");
            assert_eq!(out["stream_options"]["include_usage"], true, "{body:?}");
            assert_eq!(out["stream_options"].get("k").and_then(Value::as_i64), kept);
        }
    }
}
