//! Workload identity federation: an OAuth client that proves itself with a JWT its identity
//! provider signed (a client assertion, RFC 7523 §2.2, `client_assertion_type=
//! urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) instead of a secret — what Microsoft
//! Entra's provisioning service sends. A federated client names the issuer, subject and
//! audiences it trusts and the issuer's JWKS URL; an assertion must be signed (RS256 or ES256) by
//! a key of that JWKS, name that issuer and subject and one of those audiences, be inside its
//! validity (five minutes of clock skew), and be used once.
//!
//! The JWKS is fetched through a [`JwksFetch`] the process provides (an HTTPS client in the
//! functions; a JWKS URL must be `https://`, or `http://` on a loopback address for tests),
//! cached per URL for an hour, and fetched again when an assertion names a key it lacks — once
//! per unknown key id a minute, and at most ten times a minute per URL, so forged key ids
//! cannot make every request a fetch.

use crate::error::{Result, ScimError};
use crate::jwt::{self, ExternalKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a fetched JWKS is used before it is fetched again.
pub const JWKS_TTL_SECONDS: i64 = 3600;
/// How long an unknown key id does not make the JWKS be fetched again.
pub const REFETCH_SECONDS: i64 = 60;
/// The most fetches of one JWKS URL in a minute, whatever key ids assertions name.
pub const FETCHES_PER_MINUTE: usize = 10;
/// The largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Clock skew tolerated on an assertion's `exp`, `nbf` and `iat` (seconds).
pub const SKEW_SECONDS: i64 = 300;
/// The longest an assertion may claim to be valid for (seconds): a longer one is refused.
pub const MAX_ASSERTION_LIFETIME: i64 = 24 * 3600;

/// What a federated client trusts (`ClientRecord::federation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Federation {
    /// The assertion's `iss`, exactly (Entra: `https://login.microsoftonline.com/<tenant>/v2.0`).
    pub issuer: String,
    /// The assertion's `sub`, exactly.
    pub subject: String,
    /// Audiences accepted in `aud` (`api://<app id>`; the bare app id and `/.default` are the same).
    pub audiences: Vec<String>,
    /// Where the issuer's signing keys are.
    pub jwks_url: String,
}

impl Federation {
    /// Checks a federation as an operator or a key gives it: every field present and bounded,
    /// the JWKS URL `https://` (or loopback `http://`).
    pub fn validate(&self) -> Result<()> {
        let bounded = |name: &str, v: &str| {
            if v.trim().is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
                return Err(ScimError::invalid_value(format!("{name} is 1 to 512 printable characters")));
            }
            Ok(())
        };
        bounded("issuer", &self.issuer)?;
        bounded("subject", &self.subject)?;
        bounded("jwksUrl", &self.jwks_url)?;
        if self.audiences.is_empty() || self.audiences.len() > 5 {
            return Err(ScimError::invalid_value("audience: 1 to 5 values"));
        }
        for a in &self.audiences {
            bounded("audience", a)?;
        }
        let loopback = ["http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/", "http://[::1]:"];
        if !self.jwks_url.starts_with("https://") && !loopback.iter().any(|p| self.jwks_url.starts_with(p)) {
            return Err(ScimError::invalid_value("jwksUrl must be https:// (http:// only on this machine, for tests)"));
        }
        Ok(())
    }
}

/// `api://<id>`, `api://<id>/.default` and `<id>` are one audience (Entra has been seen
/// sending the bare app id); compared ignoring ASCII case (app ids are GUIDs).
fn audience_key(a: &str) -> String {
    let a = a.trim();
    let a = a.strip_prefix("api://").unwrap_or(a);
    a.strip_suffix("/.default").unwrap_or(a).trim_end_matches('/').to_ascii_lowercase()
}

/// Whether any audience of an assertion is one the federation accepts.
pub fn audience_matches(accepted: &[String], got: &[String]) -> bool {
    got.iter().any(|g| accepted.iter().any(|a| audience_key(a) == audience_key(g)))
}

/// Fetches a JWKS document (the process's HTTP client).
#[async_trait::async_trait]
pub trait JwksFetch: Send + Sync {
    /// The body of a GET of `url`, at most [`MAX_JWKS_BYTES`]; the reason on failure.
    async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, String>;
}

/// The claims of an assertion this module reads.
#[derive(Debug, Clone, Deserialize)]
pub struct AssertionClaims {
    /// The issuer.
    #[serde(default)]
    pub iss: String,
    /// The subject.
    #[serde(default)]
    pub sub: String,
    /// The audience: one string or several.
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry (Unix seconds); required.
    pub exp: i64,
    /// Not before (Unix seconds).
    #[serde(default)]
    pub nbf: Option<i64>,
    /// Issued at (Unix seconds).
    #[serde(default)]
    pub iat: Option<i64>,
    /// The assertion's id, when it has one (replay is judged on it, else on the whole assertion).
    #[serde(default)]
    pub jti: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => vec![s],
        serde_json::Value::Array(a) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    })
}

/// The JWKS documents a process holds, by URL, and what it fetched lately.
#[derive(Default)]
pub struct Federator {
    fetch: Option<std::sync::Arc<dyn JwksFetch>>,
    keys: Mutex<HashMap<String, (Vec<ExternalKey>, i64)>>,
    recent: tokio::sync::Mutex<Recent>,
}

/// The fetches of the last minute per URL, and the unknown key ids each was made for.
#[derive(Default)]
struct Recent {
    fetches: HashMap<String, Vec<i64>>,
    tried: HashMap<(String, String), i64>,
}

/// Unknown key ids remembered; past this the memo starts over.
const TRIED_KEPT: usize = 1024;

impl std::fmt::Debug for Federator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federator").field("fetch", &self.fetch.is_some()).finish_non_exhaustive()
    }
}

impl Federator {
    /// A federator fetching JWKS documents with `fetch`.
    pub fn new(fetch: std::sync::Arc<dyn JwksFetch>) -> Federator {
        Federator { fetch: Some(fetch), ..Default::default() }
    }

    fn held(&self, url: &str) -> Option<(Vec<ExternalKey>, i64)> {
        self.keys.lock().ok()?.get(url).cloned()
    }

    /// The JWKS of a URL: the held one while fresh and holding the key asked for; else fetched
    /// — once per unknown key id per [`REFETCH_SECONDS`], and at most [`FETCHES_PER_MINUTE`]
    /// times a minute per URL whatever the key ids (between fetches, the held one).
    async fn jwks(&self, url: &str, kid: Option<&str>, now: i64) -> std::result::Result<Vec<ExternalKey>, &'static str> {
        let usable = |held: &Option<(Vec<ExternalKey>, i64)>| {
            held.as_ref()
                .filter(|(keys, at)| now - at < JWKS_TTL_SECONDS && kid.is_none_or(|k| jwt::holds_kid(keys, k)))
                .map(|(k, _)| k.clone())
        };
        if let Some(keys) = usable(&self.held(url)) {
            return Ok(keys);
        }
        let fetch = self.fetch.as_ref().ok_or("this server fetches no JWKS (no HTTP client configured)")?;
        let mut recent = self.recent.lock().await;
        let held = self.held(url);
        // another request may have fetched it while this one waited
        if let Some(keys) = usable(&held) {
            return Ok(keys);
        }
        let fresh = held.as_ref().is_some_and(|(_, at)| now - at < JWKS_TTL_SECONDS);
        let tried_key = (url.to_string(), kid.unwrap_or_default().to_string());
        let fetches = recent.fetches.entry(url.to_string()).or_default();
        fetches.retain(|t| now - t < 60);
        let capped = fetches.len() >= FETCHES_PER_MINUTE;
        let tried = recent.tried.get(&tried_key).is_some_and(|t| now - t < REFETCH_SECONDS);
        if fresh && (tried || capped) {
            return Ok(held.map(|(k, _)| k).unwrap_or_default());
        }
        if capped {
            return Err("the identity provider's keys were fetched too often; retry in a minute");
        }
        recent.fetches.entry(url.to_string()).or_default().push(now);
        if recent.tried.len() >= TRIED_KEPT {
            recent.tried.clear();
        }
        recent.tried.insert(tried_key, now);
        let body = fetch.get(url).await.map_err(|e| {
            tracing::warn!(url, error = %e, "JWKS fetch failed");
            "the identity provider's keys could not be fetched"
        })?;
        let keys = jwt::parse_jwks(&body).ok_or("the identity provider's JWKS is not a JWKS")?;
        if let Ok(mut m) = self.keys.lock() {
            m.insert(url.to_string(), (keys.clone(), now));
        }
        Ok(keys)
    }

    /// Verifies a client assertion for a federation at `now`: signature, issuer, subject,
    /// audience, validity. The reason on refusal (for the tenant's log; the client is told
    /// only that client authentication failed).
    pub async fn verify(&self, fed: &Federation, assertion: &str, now: i64) -> std::result::Result<AssertionClaims, &'static str> {
        let kid = jwt::header(assertion).ok_or("the assertion is not a JWS")?.kid;
        let keys = self.jwks(&fed.jwks_url, kid.as_deref(), now).await?;
        let verified = jwt::verify_external(assertion, &keys).map_err(|r| match r {
            jwt::Refusal::Malformed => "the assertion is not a JWS",
            jwt::Refusal::Algorithm => "the assertion's algorithm is not RS256 or ES256",
            jwt::Refusal::UnknownKey => "the assertion names a key the issuer's JWKS lacks",
            jwt::Refusal::Signature => "the assertion's signature does not verify",
        })?;
        let c: AssertionClaims =
            serde_json::from_slice(&verified.claims).map_err(|_| "the assertion's claims are unreadable (exp is required)")?;
        if c.iss != fed.issuer {
            return Err("the assertion's issuer is not the federation's");
        }
        if c.sub != fed.subject {
            return Err("the assertion's subject is not the federation's");
        }
        if !audience_matches(&fed.audiences, &c.aud) {
            return Err("the assertion's audience is not the federation's");
        }
        if c.exp + SKEW_SECONDS <= now {
            return Err("the assertion has expired");
        }
        if c.nbf.is_some_and(|t| t > now + SKEW_SECONDS) || c.iat.is_some_and(|t| t > now + SKEW_SECONDS) {
            return Err("the assertion is not valid yet");
        }
        if c.exp - c.iat.or(c.nbf).unwrap_or(now) > MAX_ASSERTION_LIFETIME {
            return Err("the assertion claims too long a life");
        }
        Ok(c)
    }
}

/// What replay is judged on: the assertion's `jti` when it has one, else the whole assertion,
/// as a SHA-256 (the store keeps it until the assertion expires).
pub fn replay_key(c: &AssertionClaims, assertion: &str) -> String {
    let basis = c.jti.as_deref().map_or_else(|| ["whole:", assertion].concat(), |j| ["jti:", &c.iss, ":", j].concat());
    crate::crypto::sha256_hex(&basis)[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_match_with_and_without_api_prefix_and_default_scope() {
        let accepted = vec!["api://B5BA7A93-4452-4522-AEB4-A2B5DA870C16".to_string()];
        for got in [
            "api://b5ba7a93-4452-4522-aeb4-a2b5da870c16",
            "b5ba7a93-4452-4522-aeb4-a2b5da870c16",
            "api://b5ba7a93-4452-4522-aeb4-a2b5da870c16/.default",
        ] {
            assert!(audience_matches(&accepted, &[got.to_string()]), "{got}");
        }
        assert!(!audience_matches(&accepted, &["api://other".to_string()]));
        assert!(!audience_matches(&accepted, &[]));
    }

    #[test]
    fn federations_are_validated() {
        let ok = Federation {
            issuer: "https://i".into(),
            subject: "s".into(),
            audiences: vec!["api://a".into()],
            jwks_url: "https://k/keys".into(),
        };
        assert!(ok.validate().is_ok());
        assert!(Federation { jwks_url: "http://127.0.0.1:9/keys".into(), ..ok.clone() }.validate().is_ok());
        for bad in [
            Federation { jwks_url: "http://example.com/keys".into(), ..ok.clone() },
            Federation { jwks_url: "http://127.0.0.1.evil.example/keys".into(), ..ok.clone() },
            Federation { audiences: vec![], ..ok.clone() },
            Federation { subject: " ".into(), ..ok.clone() },
            Federation { issuer: "x\\n".replace("\\n", "\n"), ..ok.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
