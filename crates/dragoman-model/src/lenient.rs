//! Lenient typed reading for the usage taps: a pass-through response only needs its token
//! counts, and reading them straight from the bytes into a small struct skips the JSON tree the
//! translating path builds. The shapes here read exactly what `Value::as_u64` and
//! `Value::as_object` would accept, so the typed and the tree readings cannot disagree.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A token count: a non-negative integer, or unknown when absent, null, negative, fractional,
/// a string or anything else (as `Value::as_u64` reads it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
                Ok(Count(Some(n)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(n).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_none<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Count, D::Error> {
                Count::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object read as `T`, or `None` when the value is not an object (as `Value::as_object`
/// reads it): a provider that sends `"prompt_tokens_details": null` or a string there loses
/// nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lenient<T>(pub Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<T> Lenient<T> {
    pub fn as_ref(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| Lenient(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lenient<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lenient<T>, D::Error> {
                Lenient::deserialize(d)
            }
            fn visit_none<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Lenient<T>, E> {
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// The `usage` member of a whole response body, read without building the rest: the shape
/// every dialect's pass-through tap uses. `None` when the body is not JSON, or has a shape the
/// typed reading refuses (a repeated key, say): the caller then falls back to the tree.
pub fn read_usage_member<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Option<Option<T>> {
    #[derive(serde::Deserialize)]
    #[serde(bound(deserialize = "T: Deserialize<'de>"))]
    struct Envelope<T> {
        #[serde(default)]
        usage: Lenient<T>,
    }
    serde_json::from_slice::<Envelope<T>>(body)
        .ok()
        .map(|e| e.usage.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::{Value, json};

    #[derive(serde::Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Probe {
        n: Count,
        d: Lenient<Inner>,
    }
    #[derive(serde::Deserialize, Debug, Default, PartialEq)]
    #[serde(default)]
    struct Inner {
        k: Count,
    }

    #[test]
    fn typed_reading_agrees_with_the_tree_on_every_shape() {
        let shapes = [
            json!(7),
            json!(0),
            json!(-3),
            json!(2.5),
            json!("12"),
            json!(null),
            json!(true),
            json!([1, 2]),
            json!({"k": 4}),
            json!({"k": null}),
            json!({}),
        ];
        for n in &shapes {
            for d in &shapes {
                let v = json!({"n": n, "d": d, "other": {"deep": [1, {"x": "y"}]}});
                let bytes = serde_json::to_vec(&v).unwrap();
                let typed: Probe = serde_json::from_slice(&bytes).unwrap();
                let from_tree = Probe::deserialize(&v).unwrap();
                assert_eq!(typed, from_tree);
                assert_eq!(typed.n.0, v["n"].as_u64(), "n = {n}");
                let tree_k = v["d"]
                    .as_object()
                    .map(|o| o.get("k").and_then(Value::as_u64));
                assert_eq!(typed.d.0.map(|i| i.k.0), tree_k, "d = {d}");
            }
        }
    }

    #[test]
    fn usage_member_is_read_past_anything_around_it() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"\"usage\": {\"k\": 9}"}}],"usage":{"k":5},"z":[]}"#;
        let u: Option<Inner> = read_usage_member(body).unwrap();
        assert_eq!(u, Some(Inner { k: Count(Some(5)) }));
        assert_eq!(read_usage_member::<Inner>(br#"{"usage":null}"#), Some(None));
        assert_eq!(read_usage_member::<Inner>(br#"{"id":1}"#), Some(None));
        assert_eq!(read_usage_member::<Inner>(b"not json"), None);
        // A repeated key is refused by the typed reading; the caller falls back to the tree.
        assert_eq!(
            read_usage_member::<Inner>(br#"{"usage":{"k":1},"usage":{"k":2}}"#),
            None
        );
    }
}
