//! Compact JSON Web Signatures (RFC 7515) with one algorithm, ES256 (RFC 7518 §3.4: ECDSA P-256
//! with SHA-256, the signature the raw 64-byte `r || s`), and the public key as a JWK (RFC 7517,
//! RFC 7518 §6.2). A token is verified against the keys the caller holds, found by `kid`: the
//! header's `alg` must be `ES256`, so `none`, HMAC with a public key as its secret (algorithm
//! confusion) and every other algorithm are refused before any signature is checked.

use crate::crypto::{b64, b64_decode};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The one signing algorithm this module speaks.
pub const ALG: &str = "ES256";

/// The most bytes of a compact token this module reads (a bearer header far longer is not ours).
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Why a token was not accepted (never sent to a client in more words than "invalid token").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not three base64url parts of JSON, or too long.
    #[error("not a compact JWS")]
    Malformed,
    /// The header names an algorithm other than ES256 (`none` and `HS256` included).
    #[error("algorithm not accepted")]
    Algorithm,
    /// The header's `kid` names no key the verifier holds.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
}

/// A signing key: a P-256 private key (PKCS #8) and its key id.
pub struct Signer {
    kid: String,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// A new P-256 private key in PKCS #8 form.
pub fn generate_pkcs8() -> Vec<u8> {
    match EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()) {
        Ok(doc) => doc.as_ref().to_vec(),
        // the OS random source failing: refuse to continue with a weak key
        Err(_) => std::process::abort(),
    }
}

impl Signer {
    /// The signer of a PKCS #8 P-256 key; `None` when the bytes are not one.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Option<Signer> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?;
        Some(Signer { kid: kid.to_string(), pair })
    }

    /// The key id tokens name in their header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> Jwk {
        Jwk::of_point(&self.kid, self.pair.public_key().as_ref())
    }

    /// `claims` signed as a compact JWS with header `{"alg":"ES256","typ":typ,"kid":…}`.
    pub fn sign(&self, typ: &str, claims: &impl Serialize) -> String {
        let input = signing_input(typ, &self.kid, claims);
        let sig = self.sign_input(input.as_bytes());
        compact(&input, &sig)
    }

    /// The raw ES256 signature (`r || s`) of a JWS signing input.
    pub fn sign_input(&self, input: &[u8]) -> Vec<u8> {
        match self.pair.sign(&SystemRandom::new(), input) {
            Ok(s) => s.as_ref().to_vec(),
            Err(_) => std::process::abort(),
        }
    }
}

/// The JWS signing input (`base64url(header).base64url(claims)`) for a key id.
pub fn signing_input(typ: &str, kid: &str, claims: &impl Serialize) -> String {
    let header = Header { alg: ALG.into(), typ: Some(typ.into()), kid: Some(kid.into()) };
    [b64(crate::json_text(&header).as_bytes()), b64(crate::json_text(claims).as_bytes())].join(".")
}

/// A compact JWS of a signing input and its raw signature.
pub fn compact(input: &str, signature: &[u8]) -> String {
    [input, ".", &b64(signature)].concat()
}

/// The DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480: id-ecPublicKey, prime256v1, a
/// 66-byte BIT STRING), before the uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
    0x07, 0x03, 0x42, 0x00,
];

/// The uncompressed point of a DER P-256 SubjectPublicKeyInfo (what a KMS key's public key
/// is); `None` for any other key.
pub fn point_of_spki(der: &[u8]) -> Option<Vec<u8>> {
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 4).then(|| point.to_vec())
}

/// The raw `r || s` (32 bytes each) of a DER ECDSA signature (`SEQUENCE { INTEGER r, INTEGER
/// s }`, what KMS returns); `None` when it is not one of P-256's size.
pub fn raw_of_der_signature(der: &[u8]) -> Option<Vec<u8>> {
    fn integer(d: &[u8]) -> Option<(&[u8], &[u8])> {
        let (&tag, rest) = d.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len);
        (tag == 0x02 && len <= 33 && rest.len() >= len).then(|| rest.split_at(len))
    }
    let (&tag, rest) = der.split_first()?;
    let (&len, body) = rest.split_first()?;
    if tag != 0x30 || usize::from(len) != body.len() {
        return None;
    }
    let (r, rest) = integer(body)?;
    let (s, rest) = integer(rest)?;
    if !rest.is_empty() {
        return None;
    }
    let mut out = vec![0u8; 64];
    for (n, at) in [(r, 0), (s, 32)] {
        let n = n.strip_prefix(&[0u8][..]).filter(|_| n.len() == 33).unwrap_or(n);
        if n.len() > 32 {
            return None;
        }
        out[at + 32 - n.len()..at + 32].copy_from_slice(n);
    }
    Some(out)
}

/// A JWS header (RFC 7515 §4.1), the members this module reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    /// The signing algorithm.
    pub alg: String,
    /// The media type of the whole token (`at+jwt` for access tokens, RFC 9068 §2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The id of the key that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
}

/// A P-256 public key as a JWK (RFC 7518 §6.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The key id.
    pub kid: String,
    /// Always `ES256`.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

impl Jwk {
    /// The JWK of an uncompressed SEC 1 point (`04 || x || y`).
    pub fn of_point(kid: &str, point: &[u8]) -> Jwk {
        let (x, y) = point.get(1..).unwrap_or_default().split_at(point.len().saturating_sub(1) / 2);
        Jwk { kty: "EC".into(), crv: "P-256".into(), x: b64(x), y: b64(y), kid: kid.into(), alg: ALG.into(), use_: "sig".into() }
    }

    /// The uncompressed point, when this is a P-256 key of 32-byte coordinates.
    fn point(&self) -> Option<Vec<u8>> {
        if self.kty != "EC" || self.crv != "P-256" {
            return None;
        }
        let (x, y) = (b64_decode(&self.x)?, b64_decode(&self.y)?);
        (x.len() == 32 && y.len() == 32).then(|| [&[4u8][..], &x, &y].concat())
    }
}

/// A token's parts once its signature verified: its header and its claims' JSON text.
#[derive(Debug)]
pub struct Verified {
    /// The header.
    pub header: Header,
    /// The claims, as sent (the caller reads them into its own type).
    pub claims: Vec<u8>,
}

/// Verifies a compact JWS against `keys` (the key named by its `kid`; a token without one is
/// tried against the only key when there is one). Claims are not judged here.
pub fn verify(token: &str, keys: &[Jwk]) -> Result<Verified, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let header: Header = b64_decode(h).and_then(|b| serde_json::from_slice(&b).ok()).ok_or(Refusal::Malformed)?;
    if header.alg != ALG {
        return Err(Refusal::Algorithm);
    }
    let key = match header.kid.as_deref() {
        Some(kid) => keys.iter().find(|k| k.kid == kid),
        None if keys.len() == 1 => keys.first(),
        None => None,
    };
    let point = key.and_then(Jwk::point).ok_or(Refusal::UnknownKey)?;
    let sig = b64_decode(s).ok_or(Refusal::Malformed)?;
    let claims = b64_decode(c).ok_or(Refusal::Malformed)?;
    let input = &token.as_bytes()[..h.len() + 1 + c.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(input, &sig).map_err(|_| Refusal::Signature)?;
    Ok(Verified { header, claims })
}

/// A token's header, unverified (to find the key it names); `None` when it has none readable.
pub fn header(token: &str) -> Option<Header> {
    let h = token.split('.').next()?;
    b64_decode(h).and_then(|b| serde_json::from_slice(&b).ok())
}

/// A public key of another issuer's JWKS (an identity provider's, for a client assertion):
/// RSA (RS256, what Entra signs with) or P-256 (ES256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternalKey {
    /// An RSA key: modulus and exponent, big-endian.
    Rsa {
        /// The key id.
        kid: Option<String>,
        /// The modulus.
        n: Vec<u8>,
        /// The public exponent.
        e: Vec<u8>,
    },
    /// A P-256 key: its uncompressed point.
    Ec {
        /// The key id.
        kid: Option<String>,
        /// `04 || x || y`.
        point: Vec<u8>,
    },
}

/// Whether a set of keys holds one of a key id.
pub fn holds_kid(keys: &[ExternalKey], kid: &str) -> bool {
    keys.iter().any(|k| k.kid() == Some(kid))
}

impl ExternalKey {
    fn kid(&self) -> Option<&str> {
        match self {
            ExternalKey::Rsa { kid, .. } | ExternalKey::Ec { kid, .. } => kid.as_deref(),
        }
    }
}

/// The signing keys of a JWKS document (RFC 7517 §5) this module can verify with: RSA keys
/// and P-256 keys meant for signatures; every other key is left out.
pub fn parse_jwks(doc: &[u8]) -> Option<Vec<ExternalKey>> {
    let v: serde_json::Value = serde_json::from_slice(doc).ok()?;
    let field = |k: &serde_json::Value, f: &str| k[f].as_str().map(str::to_string);
    let keys = v["keys"].as_array()?;
    let parsed = keys.iter().filter(|k| field(k, "use").is_none_or(|u| u == "sig")).filter_map(|k| {
        let kid = field(k, "kid");
        match k["kty"].as_str()? {
            "RSA" => Some(ExternalKey::Rsa { kid, n: b64_decode(&field(k, "n")?)?, e: b64_decode(&field(k, "e")?)? }),
            "EC" if k["crv"] == "P-256" => {
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: "P-256".into(),
                    x: field(k, "x")?,
                    y: field(k, "y")?,
                    kid: String::new(),
                    alg: ALG.into(),
                    use_: "sig".into(),
                };
                Some(ExternalKey::Ec { kid, point: jwk.point()? })
            }
            _ => None,
        }
    });
    Some(parsed.collect())
}

/// Verifies another issuer's compact JWS (a client assertion, RFC 7523) against its keys:
/// `RS256` or `ES256` only (never `none`, never an HMAC), with the key its `kid` names (or the
/// only key of the right type when it names none). Claims are not judged here.
pub fn verify_external(token: &str, keys: &[ExternalKey]) -> Result<Verified, Refusal> {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Malformed);
    };
    let header: Header = b64_decode(h).and_then(|b| serde_json::from_slice(&b).ok()).ok_or(Refusal::Malformed)?;
    let rsa = match header.alg.as_str() {
        "RS256" => true,
        ALG => false,
        _ => return Err(Refusal::Algorithm),
    };
    let fits = |k: &&ExternalKey| matches!((k, rsa), (ExternalKey::Rsa { .. }, true) | (ExternalKey::Ec { .. }, false));
    let candidates: Vec<&ExternalKey> = keys.iter().filter(fits).collect();
    let key = match header.kid.as_deref() {
        Some(kid) => candidates.iter().find(|k| k.kid() == Some(kid)).copied(),
        None if candidates.len() == 1 => candidates.first().copied(),
        None => None,
    }
    .ok_or(Refusal::UnknownKey)?;
    let sig = b64_decode(s).ok_or(Refusal::Malformed)?;
    let claims = b64_decode(c).ok_or(Refusal::Malformed)?;
    let input = &token.as_bytes()[..h.len() + 1 + c.len()];
    let ok = match key {
        ExternalKey::Rsa { n, e, .. } => {
            RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(&RSA_PKCS1_2048_8192_SHA256, input, &sig).is_ok()
        }
        ExternalKey::Ec { point, .. } => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(input, &sig).is_ok(),
    };
    if !ok {
        return Err(Refusal::Signature);
    }
    Ok(Verified { header, claims })
}

/// Whether a bearer credential has the shape of a compact JWS (three parts, a JSON header), so
/// authentication can tell a token from an API key before judging either.
pub fn looks_like_jws(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signer(kid: &str) -> Signer {
        Signer::from_pkcs8(kid, &generate_pkcs8()).expect("a generated key reads back")
    }

    #[test]
    fn a_signed_token_verifies_with_its_public_key_and_no_other() {
        let (a, b) = (signer("a"), signer("b"));
        let t = a.sign("at+jwt", &json!({"sub": "c1"}));
        assert!(looks_like_jws(&t));
        let v = verify(&t, &[b.public_jwk(), a.public_jwk()]).expect("verifies");
        assert_eq!(v.header.kid.as_deref(), Some("a"));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&v.claims).unwrap(), json!({"sub": "c1"}));
        assert_eq!(verify(&t, &[b.public_jwk()]).unwrap_err(), Refusal::UnknownKey);
        // b's key under a's kid: the signature does not verify
        let mut imposter = b.public_jwk();
        imposter.kid = "a".into();
        assert_eq!(verify(&t, &[imposter]).unwrap_err(), Refusal::Signature);
    }

    #[test]
    fn none_hmac_and_tampering_are_refused() {
        let a = signer("a");
        let t = a.sign("at+jwt", &json!({"sub": "c1", "role": "reader"}));
        let parts: Vec<&str> = t.split('.').collect();
        let forged_claims = b64(br#"{"sub":"c1","role":"admin"}"#);
        assert_eq!(verify(&[parts[0], &forged_claims, parts[2]].join("."), &[a.public_jwk()]).unwrap_err(), Refusal::Signature);
        let none = b64(br#"{"alg":"none","kid":"a"}"#);
        assert_eq!(verify(&[none.as_str(), parts[1], ""].join("."), &[a.public_jwk()]).unwrap_err(), Refusal::Algorithm);
        // algorithm confusion: an HMAC keyed with the public key's JSON
        let hs = b64(br#"{"alg":"HS256","kid":"a"}"#);
        assert_eq!(verify(&[hs.as_str(), parts[1], parts[2]].join("."), &[a.public_jwk()]).unwrap_err(), Refusal::Algorithm);
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**", &"x".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(verify(bad, &[a.public_jwk()]).unwrap_err(), Refusal::Malformed, "{bad:.20}");
        }
    }

    #[test]
    fn the_jwk_carries_the_p256_point() {
        let jwk = signer("k").public_jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str()), ("EC", "P-256", "ES256"));
        assert_eq!(jwk.point().map(|p| p.len()), Some(65));
    }

    #[test]
    fn der_signatures_and_spki_keys_convert() {
        use aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = generate_pkcs8();
        let asn1 = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).unwrap();
        let point = asn1.public_key().as_ref().to_vec();
        let spki = [&P256_SPKI_PREFIX[..], &point].concat();
        assert_eq!(point_of_spki(&spki), Some(point.clone()));
        assert_eq!(point_of_spki(&spki[1..]), None);
        assert_eq!(Jwk::of_point("k", &point).point(), Some(point.clone()));
        // many signatures: r and s of fewer than 32 bytes, or with a sign byte, both occur
        for i in 0..64 {
            let input = format!("e30.e30{i}");
            let der = asn1.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
            let raw = raw_of_der_signature(der.as_ref()).expect("a P-256 DER signature");
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).verify(input.as_bytes(), &raw).expect("raw verifies");
        }
        for bad in [&[][..], &[0x30, 0x00], &[0x30, 0x03, 0x02, 0x01, 0x01], &[0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]] {
            assert_eq!(raw_of_der_signature(bad), None, "{bad:?}");
        }
    }

    struct RsaPublicKeyComponentsOwned {
        n: Vec<u8>,
        e: Vec<u8>,
    }

    #[test]
    fn external_assertions_verify_with_rsa_or_p256_and_nothing_else() {
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        // the public key is DER `SEQUENCE { INTEGER n, INTEGER e }` of a 2048-bit modulus
        let der = rsa.public_key().as_ref();
        let n = der[9..9 + 256].to_vec();
        let e = der[9 + 256 + 2..].to_vec();
        let parts = RsaPublicKeyComponentsOwned { n, e };
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "r1", "use": "sig", "n": b64(&parts.n), "e": b64(&parts.e)},
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
        ]});
        let keys = parse_jwks(jwks.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1, "the symmetric key is not a key to verify with");
        let sign_rs = |header: &str, claims: &str| {
            let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
            let mut sig = vec![0; rsa.public_modulus_len()];
            rsa.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
            format!("{input}.{}", b64(&sig))
        };
        let good = sign_rs(r#"{"alg":"RS256","kid":"r1"}"#, r#"{"sub":"s"}"#);
        assert!(verify_external(&good, &keys).is_ok());
        let parts_: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{}.{}", parts_[0], b64(br#"{"sub":"t"}"#), parts_[2]);
        assert_eq!(verify_external(&forged, &keys).unwrap_err(), Refusal::Signature);
        assert_eq!(verify_external(&sign_rs(r#"{"alg":"RS256","kid":"r2"}"#, "{}"), &keys).unwrap_err(), Refusal::UnknownKey);
        for alg in ["none", "HS256", "RS512", "PS256"] {
            let t = format!("{}.{}.{}", b64(format!(r#"{{"alg":"{alg}","kid":"r1"}}"#).as_bytes()), parts_[1], parts_[2]);
            assert_eq!(verify_external(&t, &keys).unwrap_err(), Refusal::Algorithm, "{alg}");
        }
        // an ES256 assertion is checked against P-256 keys only
        let ec = signer("e1");
        let jwk = serde_json::to_value(ec.public_jwk()).unwrap();
        let both = parse_jwks(json!({"keys": [jwks["keys"][0], jwk]}).to_string().as_bytes()).unwrap();
        assert!(verify_external(&ec.sign("JWT", &json!({"sub": "s"})), &both).is_ok());
        assert!(verify_external(&ec.sign("JWT", &json!({"sub": "s"})), &keys).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(token in "\\PC{0,300}") {
            let _ = verify(&token, &[signer("k").public_jwk()]);
        }
    }
}
