//! Tenant-scoped credentials for the DynamoDB store (the AWS SaaS pattern of a token vending
//! machine). When the function has a tenant role (`SCIM_TENANT_ROLE_ARN`), work acting for a
//! tenant ([`super::scope`]) calls DynamoDB with the credentials of an STS `AssumeRole` of that
//! role carrying the session tag `tenant=<t>`; the role's policies allow only the partition
//! keys of `${aws:PrincipalTag/tenant}`. One client per tenant per warm process: its credentials
//! are assumed on the first call and again when they expire (after [`SESSION_SECONDS`]), so a
//! container costs one STS call per tenant per hour.

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError, future};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long an assumed session lasts: the most a role reached by role chaining may have.
pub const SESSION_SECONDS: i32 = 3600;

/// At most this many tenants' clients are kept. Past it a new tenant's client serves its work
/// and is not kept: made-up tenant names in tokens cannot push real tenants' sessions out.
const MAX_TENANTS: usize = 4096;

/// The session tag that carries the tenant (`aws:PrincipalTag/tenant` in the role's policies).
pub const TENANT_TAG: &str = "tenant";

/// The tenant role, and one DynamoDB client per tenant with its own assumed credentials.
pub(super) struct TenantSessions {
    role_arn: String,
    sts: aws_sdk_sts::Client,
    base: aws_sdk_dynamodb::Config,
    clients: Mutex<HashMap<Arc<str>, Client>>,
}

impl TenantSessions {
    /// Sessions of `role_arn`, assumed with `sts`, for clients configured as `base`.
    pub(super) fn new(role_arn: String, sts: aws_sdk_sts::Client, base: aws_sdk_dynamodb::Config) -> TenantSessions {
        TenantSessions { role_arn, sts, base, clients: Mutex::new(HashMap::new()) }
    }

    /// The client whose calls reach only `tenant`'s items.
    pub(super) fn client_for(&self, tenant: &Arc<str>) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(tenant) {
            return c.clone();
        }
        let session = TenantSession { sts: self.sts.clone(), role_arn: self.role_arn.clone(), tenant: tenant.clone() };
        let client = Client::from_conf(self.base.to_builder().credentials_provider(session).build());
        if clients.len() < MAX_TENANTS {
            clients.insert(tenant.clone(), client.clone());
        }
        client
    }
}

/// The credentials of one tenant's session (the client's identity cache keeps them until they
/// expire).
struct TenantSession {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    tenant: Arc<str>,
}

impl std::fmt::Debug for TenantSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSession").field("role_arn", &self.role_arn).field("tenant", &self.tenant).finish()
    }
}

impl ProvideCredentials for TenantSession {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

impl TenantSession {
    async fn assume(&self) -> provider::Result {
        let started = std::time::Instant::now();
        let tag = aws_sdk_sts::types::Tag::builder()
            .key(TENANT_TAG)
            .value(&*self.tenant)
            .build()
            .map_err(CredentialsError::invalid_configuration)?;
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(session_name(&self.tenant))
            .tags(tag)
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| CredentialsError::provider_error(aws_sdk_sts::error::DisplayErrorContext(e).to_string()))?;
        let c = out.credentials().ok_or_else(|| CredentialsError::not_loaded("AssumeRole answered no credentials"))?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).map_err(CredentialsError::unhandled)?;
        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(tenant = %self.tenant, ms, "tenant session assumed");
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            Some(expiry),
            "scim-tenant-session",
        ))
    }
}

/// The session's name, which CloudTrail shows beside every call: `tenant-<t>`, cut to STS's 64.
fn session_name(tenant: &str) -> String {
    let mut name = format!("tenant-{tenant}");
    name.truncate(64);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions as the DynamoDB store makes them, with no call made (clients call STS lazily).
    fn sessions() -> TenantSessions {
        let creds = Credentials::new("k", "s", None, None, "test");
        let region = aws_sdk_dynamodb::config::Region::new("eu-west-1");
        let sts = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(region.clone())
            .credentials_provider(creds.clone())
            .build();
        let base = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(region)
            .credentials_provider(creds)
            .build();
        TenantSessions::new("arn:aws:iam::123456789012:role/t".into(), aws_sdk_sts::Client::from_conf(sts), base)
    }

    #[test]
    fn a_tenant_keeps_its_client_and_new_names_past_the_bound_push_none_out() {
        let s = sessions();
        let kept = |s: &TenantSessions, t: &str| s.clients.lock().unwrap().contains_key(t);
        let first: Arc<str> = Arc::from("acme");
        s.client_for(&first);
        s.client_for(&first);
        assert_eq!(s.clients.lock().unwrap().len(), 1, "one client per tenant, reused");
        for i in 1..MAX_TENANTS {
            s.client_for(&Arc::from(format!("t{i}")));
        }
        assert_eq!(s.clients.lock().unwrap().len(), MAX_TENANTS);
        s.client_for(&Arc::from("made-up"));
        assert!(kept(&s, "acme") && !kept(&s, "made-up"), "past the bound a new name is served, not kept");
        assert_eq!(s.clients.lock().unwrap().len(), MAX_TENANTS);
    }

    #[test]
    fn a_session_is_named_after_its_tenant_within_the_limit() {
        assert_eq!(session_name("acme"), "tenant-acme");
        assert_eq!(session_name(&"a".repeat(64)).len(), 64);
    }
}
