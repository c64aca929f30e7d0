//! Attribute paths (RFC 7644 §3.10): `[urn:]attr[.sub]`, and their resolution against a
//! resource type's schemas.

use crate::error::{Result, ScimError};
use crate::schema::{AttrDef, ResourceType, SchemaDef};

/// An attribute path as written by the client: optional schema URN, attribute, sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix, as written, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub urn: Option<String>,
    /// The attribute name, as written (attribute names are case-insensitive).
    pub attr: String,
    /// The sub-attribute name after the `.`, as written, if any.
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses `urn:...:User:name.givenName`, `name.givenName`, `userName`, `$ref`.
    /// Attribute names never contain ':', so the URN ends at the last colon.
    pub fn parse(text: &str) -> Result<AttrPath> {
        let text = text.trim();
        let (urn, attr, sub) = split(text).ok_or_else(|| ScimError::invalid_path(format!("'{text}' is not a valid attribute path")))?;
        Ok(AttrPath { urn: urn.map(str::to_string), attr: attr.to_string(), sub: sub.map(str::to_string) })
    }

    /// What this already parsed path names (see [`resolve`]): a whole extension when it is one's
    /// URN read as `urn:attr` (only a URN-qualified path without sub-attribute can be), else an
    /// attribute.
    pub fn named<'a>(&self, rt: &'a ResourceType) -> Option<Named<'a>> {
        if self.urn.is_some()
            && self.sub.is_none()
            && let Some(ext) = rt.extension(&self.to_string())
        {
            return Some(Named::Extension(ext));
        }
        self.resolve(rt).map(Named::Attribute)
    }

    /// Resolves this path against a resource type. `None` when no such attribute is defined.
    pub fn resolve<'a>(&self, rt: &'a ResourceType) -> Option<Target<'a>> {
        let r = rt.resolve(self.urn.as_deref(), &self.attr)?;
        let sub = match &self.sub {
            Some(s) => Some(r.def.sub_attr(s)?),
            None => None,
        };
        Some(Target { ext: r.ext, def: r.def, sub })
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.urn {
            write!(f, "{u}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(s) = &self.sub {
            write!(f, ".{s}")?;
        }
        Ok(())
    }
}

/// Splits `[urn:]attr[.sub]` into its parts without copying them; `None` when the text is not
/// such a path. The URN ends at the last colon: attribute names never hold one.
pub fn split(text: &str) -> Option<(Option<&str>, &str, Option<&str>)> {
    let (urn, rest) = match text.rfind(':') {
        Some(i) if text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) => (Some(&text[..i]), &text[i + 1..]),
        Some(_) => return None,
        None => (None, text),
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    (valid_name(attr) && sub.is_none_or(valid_name)).then_some((urn, attr, sub))
}

/// What a path names in a resource type.
#[derive(Debug, Clone, Copy)]
pub enum Named<'a> {
    /// A whole extension schema (the path is its URN).
    Extension(&'a SchemaDef),
    /// An attribute or sub-attribute.
    Attribute(Target<'a>),
}

/// The one resolver of attribute paths, for filters, PATCH, projections and request members:
/// a whole extension's URN first (an extension URN may end in a segment no attribute name could,
/// `…:2.0`), else `[urn:]attr[.sub]` with the URN ending at the last colon (attribute names never
/// hold one). `Ok(None)`: a well-formed path naming nothing in this type; `Err`: not a path.
pub fn resolve<'a>(rt: &'a ResourceType, text: &str) -> Result<Option<Named<'a>>> {
    if let Some(ext) = rt.extension(text.trim()) {
        return Ok(Some(Named::Extension(ext)));
    }
    Ok(AttrPath::parse(text)?.named(rt))
}

/// RFC 7643 ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; plus `$ref`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some('$') => chars.as_str().eq_ignore_ascii_case("ref"),
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        _ => false,
    }
}

/// A resolved path: the top-level attribute (and its schema) and optionally a sub-attribute.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Extension URN the attribute lives under, `None` for core and common attributes.
    pub ext: Option<&'a str>,
    /// Definition of the top-level attribute.
    pub def: &'a AttrDef,
    /// Definition of the named sub-attribute of [`def`](Self::def), if the path has one.
    pub sub: Option<&'a AttrDef>,
}

impl<'a> Target<'a> {
    /// The definition of the leaf this path names.
    pub fn leaf(&self) -> &'a AttrDef {
        self.sub.unwrap_or(self.def)
    }

    /// A printable canonical name, e.g. `name.givenName` or `urn:...:User:department`.
    pub fn canonical_name(&self) -> String {
        let mut s = String::new();
        if let Some(e) = self.ext {
            s.push_str(e);
            s.push(':');
        }
        s.push_str(&self.def.name);
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{URN_ENTERPRISE, user_type};

    #[test]
    fn parses_plain_dotted_and_urn_paths() {
        let p = AttrPath::parse("name.givenName").unwrap();
        assert_eq!((p.attr.as_str(), p.sub.as_deref()), ("name", Some("givenName")));
        let p = AttrPath::parse("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").unwrap();
        assert_eq!(p.urn.as_deref(), Some(URN_ENTERPRISE));
        assert_eq!((p.attr.as_str(), p.sub.as_deref()), ("manager", Some("value")));
        assert!(AttrPath::parse("name..x").is_err());
        assert!(AttrPath::parse("9abc").is_err());
        assert!(AttrPath::parse("a:b").is_err());
    }

    #[test]
    fn one_resolver_names_extensions_attributes_and_nothing() {
        let rt = user_type();
        assert!(matches!(resolve(rt, URN_ENTERPRISE), Ok(Some(Named::Extension(e))) if *e.id == *URN_ENTERPRISE));
        let upper = URN_ENTERPRISE.to_uppercase();
        assert!(matches!(resolve(rt, &upper), Ok(Some(Named::Extension(_)))));
        let named = |t: &str| match resolve(rt, t) {
            Ok(Some(Named::Attribute(t))) => Some(t.canonical_name()),
            _ => None,
        };
        assert_eq!(named(&format!("{URN_ENTERPRISE}:manager.value")).as_deref(), Some(&*format!("{URN_ENTERPRISE}:manager.value")));
        assert_eq!(named("urn:ietf:params:scim:schemas:core:2.0:User:NAME.givenname").as_deref(), Some("name.givenName"));
        assert_eq!(named("department").as_deref(), Some(&*format!("{URN_ENTERPRISE}:department")));
        assert!(matches!(resolve(rt, "urn:acme:nosuch:2.0:User:x"), Ok(None)));
        assert!(matches!(resolve(rt, "nosuch"), Ok(None)));
        assert!(resolve(rt, "a b").is_err());
    }

    #[test]
    fn resolves_to_canonical_names() {
        let t = AttrPath::parse("NAME.FamilyName").unwrap().resolve(user_type()).unwrap();
        assert_eq!(t.canonical_name(), "name.familyName");
        assert!(AttrPath::parse("name.nosuch").unwrap().resolve(user_type()).is_none());
    }
}
