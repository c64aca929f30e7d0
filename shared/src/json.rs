//! Client JSON, read strictly: a body that names one member twice in an object, at any depth, is
//! refused (`400 invalidSyntax` naming it). RFC 8259 §4 leaves what such a body means to each
//! parser; refusing it means the check that judged a request and the write that stores it can
//! never read two different values of one member.

use crate::error::{Result, ScimError};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};
use std::cell::{Cell, RefCell};

/// Parses a client's JSON text into a value, refusing a duplicate member name anywhere.
pub fn parse(text: &[u8]) -> Result<Value> {
    let (path, duplicate) = (RefCell::new(Vec::new()), Cell::new(false));
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = Strict { path: &path, duplicate: &duplicate }.deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match duplicate.get() {
        false => ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")),
        true => ScimError::invalid_syntax(format!("the request body names the member '{}' twice", dotted(&path.borrow()))),
    })
}

/// `name.givenName`, `emails[].value`: the members from the outermost in (an array element is
/// an empty name).
fn dotted(names: &[String]) -> String {
    let mut out = String::new();
    for n in names {
        match n.is_empty() {
            true => out.push_str("[]"),
            false => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(n);
            }
        }
    }
    out
}

/// Reads one value. `path` holds the names of the members being read, outermost first; a
/// duplicate sets `duplicate` and leaves `path` naming it.
#[derive(Clone, Copy)]
struct Strict<'a> {
    path: &'a RefCell<Vec<String>>,
    duplicate: &'a Cell<bool>,
}

const DUPLICATE: &str = "a member name appears twice";

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Number::from_f64(v).map(Value::Number).unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        self.path.borrow_mut().push(String::new());
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        self.path.borrow_mut().pop();
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            // the name is held in the path while its value is read (moved, not copied)
            self.path.borrow_mut().push(name);
            let value = map.next_value_seed(self)?;
            let name = self.path.borrow_mut().pop().unwrap_or_default();
            match out.entry(name) {
                Entry::Vacant(v) => {
                    v.insert(value);
                }
                Entry::Occupied(o) => {
                    self.path.borrow_mut().push(o.key().clone());
                    self.duplicate.set(true);
                    return Err(A::Error::custom(DUPLICATE));
                }
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_member_named_twice_is_refused_wherever_it_is() {
        for (body, named) in [
            (r#"{"userName":"a","userName":"b"}"#, "userName"),
            (r#"{"name":{"givenName":"a","givenName":"b"}}"#, "name.givenName"),
            (r#"{"emails":[{"value":"a"},{"value":"b","value":"c"}]}"#, "emails[].value"),
            (r#"{"Operations":[{"op":"add","value":{"roles":[],"roles":[{"value":"admin"}]}}]}"#, "Operations[].value.roles"),
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!((e.status(), e.scim_type().map(|t| t.as_str())), (400, Some("invalidSyntax")));
            assert!(e.to_string().contains(&format!("'{named}' twice")), "{body}: {e}");
        }
        // names that differ only in case are two members (SCIM matches them case-insensitively,
        // and the resource layer refuses such a pair on its own terms)
        assert!(parse(br#"{"a":1,"A":2}"#).is_ok());
        let e = parse(b"{\"a\":1,}").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        assert!(parse(b"{} x").is_err(), "trailing text is refused");
        let e = parse(br#"{"a":{"b":[1,}}"#).unwrap_err();
        assert!(e.to_string().contains("not valid JSON"), "a syntax error deep inside is not a duplicate: {e}");
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| serde_json::json!(f)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Whatever JSON without duplicates, it reads exactly as serde_json reads it.
        #[test]
        fn reads_what_serde_json_reads(v in json_value()) {
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse(&text).unwrap(), serde_json::from_slice::<Value>(&text).unwrap());
        }
    }
}
