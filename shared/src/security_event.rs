//! Change events as Security Event Tokens (RFC 8417) in the SCIM profile of RFC 9967: the
//! standard shape a host application (or any SET receiver) reads. One [`crate::events::Event`]
//! becomes one SET, signed as a compact JWS (`typ: secevent+jwt`) with the same keys the OAuth
//! token endpoint signs with, so a receiver verifies it offline against the published JWKS.
//!
//! What a stored change can say decides the event: a modification is `prov:patch:notice` with
//! the changed attribute names (the item images cannot tell a PUT from a PATCH, and both
//! produce the same document); a membership added or removed is a `prov:patch:notice` of the
//! group's `members`; a user whose `active` turned false or true is `prov:deactivate` or
//! `prov:activate`. Only `notice` forms are built here.

use crate::events::Event;
use crate::jwt::Signer;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The JWS `typ` of a SET (RFC 8417 §2.3).
pub const TYP: &str = "secevent+jwt";

/// RFC 9967 event URIs this module produces.
pub const CREATE_NOTICE: &str = "urn:ietf:params:scim:event:prov:create:notice";
/// A modification, naming the changed attributes.
pub const PATCH_NOTICE: &str = "urn:ietf:params:scim:event:prov:patch:notice";
/// A deletion.
pub const DELETE: &str = "urn:ietf:params:scim:event:prov:delete";
/// A user made active.
pub const ACTIVATE: &str = "urn:ietf:params:scim:event:prov:activate";
/// A user made inactive.
pub const DEACTIVATE: &str = "urn:ietf:params:scim:event:prov:deactivate";

/// Every event URI offered (what `/ServiceProviderConfig` can advertise).
pub const OFFERED: [&str; 5] = [CREATE_NOTICE, PATCH_NOTICE, DELETE, ACTIVATE, DEACTIVATE];

/// Who issues the tokens and for whom.
#[derive(Clone)]
pub struct Issuing<'a> {
    /// `iss`: the SCIM base URL of the deployment.
    pub issuer: &'a str,
    /// `aud`: the receiver (a stream's URL or name).
    pub audience: &'a str,
    /// The endpoint of a declared resource type by its name (`Device` → `/Devices`); a type
    /// without one yields no token.
    pub endpoint_of: &'a dyn Fn(&str) -> Option<String>,
}

/// The subject of a SCIM event (RFC 9967 `sub_id`, format `scim`; never `sub`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subject {
    /// Always `scim`.
    pub format: &'static str,
    /// The resource's path under the base URL (`/Users/<id>`).
    pub uri: String,
    /// The resource's `externalId`, where known.
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// The claims of one SET.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claims {
    /// The issuer: the deployment's SCIM base URL.
    pub iss: String,
    /// The receiver the token is for.
    pub aud: String,
    /// When the token was made (seconds).
    pub iat: i64,
    /// The token's id (RFC 9967 §2.2: distinct per SET): the event's id and a digest of the
    /// audience, so a retried delivery to one receiver carries the same `jti` (the receiver
    /// drops duplicates by it) and two receivers of one change get distinct ones.
    pub jti: String,
    /// When the change was written (seconds; RFC 8417 `toe`), not when it is delivered.
    pub toe: i64,
    /// The transaction (RFC 8417 `txn`, RFC 9967 §2.2): the same for every SET of one change,
    /// whichever receiver and however often sent: the event's id.
    pub txn: String,
    /// The tenant the change belongs to (a private claim, RFC 7519 §4.3): one deployment
    /// serves many tenants under one issuer.
    pub tenant: String,
    /// The resource the event is about.
    pub sub_id: Subject,
    /// One event URI and its payload.
    pub events: Map<String, Value>,
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name).and_then(Value::as_str).map(str::to_string)
}

/// The subject and the event URI with its payload; `None` for an event RFC 9967 has no
/// shape for here (a declared type without an endpoint).
fn classify(e: &Event, issuing: &Issuing<'_>) -> Option<(Subject, &'static str, Value)> {
    let d = &e.detail;
    let (noun, verb) = e.kind.split_once('.')?;
    if noun == "membership" {
        let uri = format!("/Groups/{}", text(d, "group")?);
        return Some((Subject { format: "scim", uri, external_id: None }, PATCH_NOTICE, json!({"attributes": ["members"]})));
    }
    let endpoint = match noun {
        "user" => "/Users".to_string(),
        "group" => "/Groups".to_string(),
        _ => (issuing.endpoint_of)(&text(d, "resourceType")?)?,
    };
    let subject = Subject { format: "scim", uri: format!("{endpoint}/{}", text(d, "id")?), external_id: text(d, "externalId") };
    let changed = d.get("changed").cloned().unwrap_or_else(|| json!([]));
    let (uri, payload) = match verb {
        // a notice carries exactly one of `data` or `attributes` (RFC 9967 §2.4)
        "created" => (CREATE_NOTICE, json!({"attributes": changed})),
        "deleted" => (DELETE, json!({})),
        "deactivated" => (DEACTIVATE, json!({})),
        "reactivated" => (ACTIVATE, json!({})),
        _ => (PATCH_NOTICE, json!({"attributes": changed})),
    };
    Some((subject, uri, payload))
}

/// The SET claims of an identified event (its `eventId` is the `jti`); `None` when the event
/// has no id or no SCIM subject.
pub fn claims_of(e: &Event, issuing: &Issuing<'_>, now: i64) -> Option<Claims> {
    let d = &e.detail;
    let (sub_id, uri, payload) = classify(e, issuing)?;
    let event_id = text(d, "eventId")?;
    let toe = text(d, "time").and_then(|t| crate::time::parse(&t)).map_or(now, |t| t.unix_timestamp());
    let mut events = Map::new();
    events.insert(uri.to_string(), payload);
    Some(Claims {
        iss: issuing.issuer.to_string(),
        aud: issuing.audience.to_string(),
        iat: now,
        jti: [&*event_id, "-", &crate::crypto::sha256_hex(issuing.audience)[..12]].concat(),
        toe,
        txn: event_id,
        tenant: text(d, "tenant")?,
        sub_id,
        events,
    })
}

/// The event as a signed SET (compact JWS), or `None` as [`claims_of`].
pub fn sign(e: &Event, issuing: &Issuing<'_>, signer: &Signer, now: i64) -> Option<String> {
    claims_of(e, issuing, now).map(|c| signer.sign(TYP, &c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::derive;
    use crate::store::Item;

    fn issuing(endpoints: &dyn Fn(&str) -> Option<String>) -> Issuing<'_> {
        Issuing { issuer: "https://api.example/scim/v2", audience: "https://app.example/scim-events", endpoint_of: endpoints }
    }

    fn user(active: bool, title: &str) -> Item {
        let d = json!({"id": "u1", "userName": "ann", "active": active, "title": title, "externalId": "e1",
                       "meta": {"lastModified": "2026-12-07T10:00:00Z"}});
        Item::new("TENANT#acme", "USER#u1", d.to_string(), 1)
    }

    fn one(old: Option<&Item>, new: Option<&Item>) -> Claims {
        let mut e = derive(old, new).remove(0);
        e.identify("ev-1", None);
        claims_of(&e, &issuing(&|_| None), 1_800_000_000).expect("a SET")
    }

    #[test]
    fn each_kind_of_change_has_its_rfc_9967_event() {
        let created = one(None, Some(&user(true, "a")));
        assert_eq!(created.events.keys().collect::<Vec<_>>(), vec![CREATE_NOTICE]);
        assert_eq!(created.events[CREATE_NOTICE], json!({"attributes": ["active", "externalId", "id", "title", "userName"]}));
        assert_eq!(created.sub_id, Subject { format: "scim", uri: "/Users/u1".into(), external_id: Some("e1".into()) });
        assert_eq!((created.txn.as_str(), created.tenant.as_str(), created.iat), ("ev-1", "acme", 1_800_000_000));
        assert!(created.jti.starts_with("ev-1-") && created.jti.len() == "ev-1-".len() + 12, "{}", created.jti);
        let mut e = derive(None, Some(&user(true, "a"))).remove(0);
        e.identify("ev-1", None);
        let other = claims_of(&e, &Issuing { audience: "https://other.example/events", ..issuing(&|_| None) }, 0).unwrap();
        assert_eq!(other.txn, created.txn, "one change, one txn for every receiver");
        assert_ne!(other.jti, created.jti, "a distinct jti per receiver's SET");
        assert_eq!(claims_of(&e, &issuing(&|_| None), 5).unwrap().jti, created.jti, "a retry to one receiver: the same jti");
        assert_eq!(created.toe, 1_796_637_600, "the time of the write, not of the token");
        let patched = one(Some(&user(true, "a")), Some(&user(true, "b")));
        assert_eq!(patched.events[PATCH_NOTICE], json!({"attributes": ["title"]}));
        assert!(one(Some(&user(true, "a")), Some(&user(false, "a"))).events.contains_key(DEACTIVATE));
        assert!(one(Some(&user(false, "a")), Some(&user(true, "a"))).events.contains_key(ACTIVATE));
        assert!(one(Some(&user(true, "a")), None).events.contains_key(DELETE));
        let m = Item::new("TENANT#acme#GROUP#g1", "MEMBER#u1", "{}".into(), 1);
        let added = one(None, Some(&m));
        assert_eq!((added.sub_id.uri.as_str(), &added.events[PATCH_NOTICE]), ("/Groups/g1", &json!({"attributes": ["members"]})));
        let text = serde_json::to_value(&added).unwrap();
        assert!(text.get("sub").is_none() && text["sub_id"]["format"] == "scim", "the subject is sub_id, never sub");
    }

    #[test]
    fn declared_types_use_their_endpoint_and_unknown_ones_yield_none() {
        let doc = json!({"id": "d1", "meta": {"resourceType": "Device"}}).to_string();
        let item = Item::new("TENANT#acme", "RES3#d1", doc, 1);
        let mut e = derive(None, Some(&item)).pop().expect("a declared type's event");
        e.identify("ev-2", None);
        let known = |t: &str| (t == "Device").then(|| "/Devices".to_string());
        assert_eq!(claims_of(&e, &issuing(&known), 0).map(|c| c.sub_id.uri), Some("/Devices/d1".into()));
        assert_eq!(claims_of(&e, &issuing(&|_| None), 0), None);
    }

    #[test]
    fn a_signed_set_verifies_against_the_public_key() {
        let signer = Signer::from_pkcs8("k1", &crate::jwt::generate_pkcs8()).unwrap();
        let mut e = derive(None, Some(&user(true, "a"))).remove(0);
        let issuing = issuing(&|_| None);
        assert_eq!(sign(&e, &issuing, &signer, 0), None, "an event without an id has no txn and no token");
        e.identify("ev-3", None);
        let token = sign(&e, &issuing, &signer, 0).unwrap();
        let verified = crate::jwt::verify(&token, &[signer.public_jwk()]).expect("verifies");
        assert_eq!(verified.header.typ.as_deref(), Some(TYP));
        let claims: Value = serde_json::from_slice(&verified.claims).unwrap();
        assert_eq!(claims["txn"], "ev-3");
        let other = Signer::from_pkcs8("k1", &crate::jwt::generate_pkcs8()).unwrap();
        assert!(crate::jwt::verify(&token, &[other.public_jwk()]).is_err(), "another key does not verify it");
    }
}
