//! Access-token signing keys in AWS KMS (`SCIM_TOKEN_SIGNING_KEYS`: key ids or ARNs, comma
//! separated; the first signs, every one verifies, so a rotation prepends the new key and drops
//! the old one once its tokens have expired). The private key never leaves KMS: the token
//! function calls `kms:Sign`, the authorizer only `kms:GetPublicKey`, once per process per key.
//! A key's `kid` is the first 16 hex digits of the SHA-256 of its public point.

use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use scim_core::error::{Result, ScimError};
use scim_core::jwt::{self, Jwk};
use scim_core::oauth::{Claims, SigningKeys, TOKEN_TYP};

/// The variable naming the signing keys.
pub const KEYS_VAR: &str = "SCIM_TOKEN_SIGNING_KEYS";

/// One KMS key as this process knows it: its id and, once read, its public JWK.
struct Known {
    key_id: String,
    jwk: tokio::sync::OnceCell<Jwk>,
}

/// Signing keys in KMS.
pub struct KmsKeys {
    client: Client,
    keys: Vec<Known>,
}

impl KmsKeys {
    /// The keys `SCIM_TOKEN_SIGNING_KEYS` names, with a client built once (region explicit,
    /// credentials from the environment; `SCIM_KMS_ENDPOINT` for a local stand-in). `None`
    /// when the variable is not set.
    pub fn from_env() -> Option<std::result::Result<KmsKeys, String>> {
        let ids = std::env::var(KEYS_VAR).ok().filter(|v| !v.trim().is_empty())?;
        let region = match std::env::var("AWS_REGION").or_else(|_| std::env::var("AWS_DEFAULT_REGION")) {
            Ok(r) => r,
            Err(_) => return Some(Err("AWS_REGION is not set".into())),
        };
        let endpoint = std::env::var("SCIM_KMS_ENDPOINT").ok().filter(|s| !s.is_empty());
        Some(KmsKeys::connect(&ids, &region, endpoint.as_deref()))
    }

    /// Keys by id (comma separated) in a region, at an endpoint when given.
    pub fn connect(ids: &str, region: &str, endpoint: Option<&str>) -> std::result::Result<KmsKeys, String> {
        let var = |n: &str| std::env::var(n).ok();
        let creds = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), endpoint) {
            (Some(k), Some(s), _) => aws_credential_types::Credentials::new(k, s, var("AWS_SESSION_TOKEN"), None, "environment"),
            (_, _, Some(_)) => aws_credential_types::Credentials::new("local", "local", None, None, "local-endpoint"),
            _ => return Err("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set".into()),
        };
        let mut b = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds);
        if let Some(e) = endpoint {
            b = b.endpoint_url(e);
        }
        let keys: Vec<Known> = ids
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|k| Known { key_id: k.to_string(), jwk: tokio::sync::OnceCell::new() })
            .collect();
        if keys.is_empty() {
            return Err(format!("{KEYS_VAR} names no key"));
        }
        Ok(KmsKeys { client: Client::from_conf(b.build()), keys })
    }

    /// A key's public JWK, read from KMS once per process.
    async fn jwk(&self, k: &Known) -> Result<Jwk> {
        let jwk = k
            .jwk
            .get_or_try_init(|| async {
                let out = self.client.get_public_key().key_id(&k.key_id).send().await.map_err(|e| kms_error("GetPublicKey", &e))?;
                let der = out.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default();
                let point = jwt::point_of_spki(&der)
                    .ok_or_else(|| ScimError::Internal(format!("KMS key {} is not an ECC_NIST_P256 key", k.key_id)))?;
                let kid = scim_core::crypto::sha256_hex_bytes(&point)[..16].to_string();
                Ok::<_, ScimError>(Jwk::of_point(&kid, &point))
            })
            .await?;
        Ok(jwk.clone())
    }
}

fn kms_error(call: &str, e: &impl std::error::Error) -> ScimError {
    // the SDK's error chain, never a secret: KMS errors name keys and reasons
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    ScimError::Internal(format!("KMS {call} failed: {text}"))
}

#[async_trait::async_trait]
impl SigningKeys for KmsKeys {
    async fn public_keys(&self) -> Result<Vec<Jwk>> {
        let mut out = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            out.push(self.jwk(k).await?);
        }
        Ok(out)
    }

    async fn sign(&self, claims: &Claims) -> Result<String> {
        let current = &self.keys[0];
        let kid = self.jwk(current).await?.kid;
        let input = jwt::signing_input(TOKEN_TYP, &kid, claims);
        let out = self
            .client
            .sign()
            .key_id(&current.key_id)
            .message(Blob::new(input.as_bytes()))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| kms_error("Sign", &e))?;
        let der = out.signature().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let raw =
            jwt::raw_of_der_signature(&der).ok_or_else(|| ScimError::Internal("KMS returned a signature that is not P-256 DER".into()))?;
        Ok(jwt::compact(&input, &raw))
    }
}
