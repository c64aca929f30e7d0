//! The tenant's own configuration over HTTP, and what the edge needs of the store besides the
//! resources: authentication, the activity log and the request limit. The edge reaches all of
//! it through the service; only the service layer holds the layout.

use super::*;
use crate::{activity, auth, declarations, oauth_clients, settings};

/// What a configuration route does (its row's operation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsOp {
    /// `GET /Settings`.
    View,
    /// `PATCH /Settings`.
    Change,
    /// `GET /Settings/RoleMappings`.
    RoleMappings,
    /// `PUT /Settings/RoleMappings`.
    ReplaceRoleMappings,
    /// `DELETE /Settings/RoleMappings`.
    DeleteRoleMappings,
    /// `GET /Settings/Schemas`.
    SchemaDeclarations,
    /// `GET /Settings/Schemas/{urn}`.
    SchemaDeclaration,
    /// `PUT /Settings/Schemas/{urn}`.
    PutSchemaDeclaration,
    /// `DELETE /Settings/Schemas/{urn}`.
    DeleteSchemaDeclaration,
    /// `GET /Settings/ResourceTypes`.
    ResourceTypeDeclarations,
    /// `GET /Settings/ResourceTypes/{name}`.
    ResourceTypeDeclaration,
    /// `PUT /Settings/ResourceTypes/{name}`.
    PutResourceTypeDeclaration,
    /// `DELETE /Settings/ResourceTypes/{name}`.
    DeleteResourceTypeDeclaration,
    /// `POST /Settings/PortalLinks`.
    CreatePortalLink,
    /// `DELETE /Settings/PortalLinks`.
    RevokePortalLinks,
    /// `GET /Settings/OAuthClients`.
    OAuthClients,
    /// `POST /Settings/OAuthClients`.
    CreateOAuthClient,
    /// `GET /Settings/OAuthClients/{id}`.
    OAuthClient,
    /// `PATCH /Settings/OAuthClients/{id}`.
    ChangeOAuthClient,
    /// `DELETE /Settings/OAuthClients/{id}`.
    RevokeOAuthClient,
    /// `GET /Settings/OAuthFederation`.
    OAuthFederations,
    /// `POST /Settings/OAuthFederation`.
    CreateOAuthFederation,
}

/// What a configuration operation gave: a document shown, made or changed, or nothing left.
#[derive(Debug, Clone, PartialEq)]
pub enum Configured {
    /// A document read, unchanged (answered 200).
    Shown(Value),
    /// A document created: a new schema declaration or portal link (answered 201).
    Made(Value),
    /// A document after its change: settings, role mappings, a redeclaration (answered 200).
    Changed(Value),
    /// The configuration was deleted or revoked; nothing to return (answered 204).
    Gone,
}

/// A declaration's answer: made (201) when new, changed (200) when redeclared.
fn declared((decl, is_new): (Value, bool)) -> Configured {
    if is_new { Configured::Made(decl) } else { Configured::Changed(decl) }
}

impl Service {
    /// The layout, for the operator's tools and bootstrap (never the edge's: it asks the
    /// service).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Runs a configuration operation for the principal's tenant: `doc` is the body (`Null`
    /// when none), `id` the path's id (a schema URN, an OAuth client id).
    pub async fn configure(
        &self,
        op: SettingsOp,
        principal: &auth::Principal,
        base_url: &str,
        doc: &Value,
        id: &str,
    ) -> Result<Configured> {
        let (layout, tenant) = (&self.layout, principal.tenant_id.as_str());
        let body = (!doc.is_null()).then_some(doc);
        Ok(match op {
            SettingsOp::OAuthClients => Configured::Shown(oauth_clients::list(layout, tenant, base_url, false).await?),
            SettingsOp::OAuthFederations => Configured::Shown(oauth_clients::list(layout, tenant, base_url, true).await?),
            SettingsOp::CreateOAuthFederation => {
                Configured::Made(oauth_clients::create_federated(layout, principal, base_url, body).await?)
            }
            SettingsOp::CreateOAuthClient => Configured::Made(oauth_clients::create(layout, principal, base_url, body).await?),
            SettingsOp::OAuthClient => Configured::Shown(oauth_clients::get(layout, tenant, base_url, id).await?),
            SettingsOp::ChangeOAuthClient => Configured::Changed(oauth_clients::change(layout, tenant, base_url, id, doc).await?),
            SettingsOp::RevokeOAuthClient => oauth_clients::revoke(layout, tenant, id).await.map(|()| Configured::Gone)?,
            SettingsOp::View => Configured::Shown(settings::view(layout, tenant, base_url).await?),
            SettingsOp::Change => Configured::Changed(settings::patch(layout, tenant, base_url, doc).await?),
            SettingsOp::RoleMappings => Configured::Shown(settings::role_mappings(layout, tenant).await?),
            SettingsOp::ReplaceRoleMappings => Configured::Changed(settings::replace_role_mappings(layout, tenant, doc).await?),
            SettingsOp::DeleteRoleMappings => settings::delete_role_mappings(layout, tenant).await.map(|()| Configured::Gone)?,
            SettingsOp::SchemaDeclarations => Configured::Shown(declarations::list(layout, tenant).await?),
            SettingsOp::SchemaDeclaration => Configured::Shown(declarations::get(layout, tenant, id).await?),
            SettingsOp::PutSchemaDeclaration => declared(declarations::put(layout, tenant, id, doc).await?),
            SettingsOp::DeleteSchemaDeclaration => declarations::delete(layout, tenant, id).await.map(|()| Configured::Gone)?,
            SettingsOp::ResourceTypeDeclarations => Configured::Shown(declarations::list_types(layout, tenant).await?),
            SettingsOp::ResourceTypeDeclaration => Configured::Shown(declarations::get_type(layout, tenant, id).await?),
            SettingsOp::PutResourceTypeDeclaration => declared(declarations::put_type(layout, tenant, id, doc).await?),
            SettingsOp::DeleteResourceTypeDeclaration => declarations::delete_type(layout, tenant, id).await.map(|()| Configured::Gone)?,
            SettingsOp::CreatePortalLink => Configured::Made(settings::create_portal_link(layout, tenant, base_url, body).await?),
            SettingsOp::RevokePortalLinks => settings::revoke_portal_links(layout, tenant).await.map(|()| Configured::Gone)?,
        })
    }

    /// Authenticates a bearer credential: an API key ([`auth::authenticate_attempt`]) or an
    /// OAuth access token ([`auth::authenticate_token`]). A refusal of a known tenant's
    /// credential is recorded in that tenant's activity log when `attempt` says what it was for.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
        attempt: Option<auth::Attempt<'_>>,
    ) -> Result<auth::Principal> {
        let bearer = authorization.and_then(|h| h.split_once(' ')).filter(|(s, _)| s.eq_ignore_ascii_case("bearer")).map(|(_, t)| t.trim());
        match bearer {
            Some(token) if crate::jwt::looks_like_jws(token) => {
                auth::authenticate_token(&self.layout, self.signing.as_ref(), &self.tokens, token, source_ip, attempt).await
            }
            _ => auth::authenticate_attempt(&self.layout, authorization, source_ip, attempt).await,
        }
    }

    /// Where this service's access tokens are signed and their public keys come from.
    pub fn signing_keys(&self) -> &dyn crate::oauth::SigningKeys {
        self.signing.as_ref()
    }

    /// The JWKS documents of identity providers this service has fetched (client assertions).
    pub fn federator(&self) -> &crate::federation::Federator {
        &self.federator
    }

    /// The service fetching identity providers' JWKS documents with `fetch` (workload identity
    /// federation; without one, client assertions are refused).
    pub fn with_jwks_fetch(mut self, fetch: std::sync::Arc<dyn crate::federation::JwksFetch>) -> Service {
        self.federator = crate::federation::Federator::new(fetch);
        self
    }

    /// The service with another source of signing keys (a KMS key in AWS).
    pub fn with_signing_keys(mut self, keys: std::sync::Arc<dyn crate::oauth::SigningKeys>) -> Service {
        self.signing = keys;
        self
    }

    /// Records an entry in a tenant's activity log (best effort: [`activity::record`]).
    pub async fn record(&self, tenant: &str, entry: activity::Entry<'_>) {
        activity::record(&self.layout, tenant, entry).await;
    }

    /// Runs `f` (one request of `tenant`) acting for that tenant: every store call it makes is
    /// one of the tenant's ([`crate::store::scope`]; in AWS, with credentials that reach only
    /// that tenant's items).
    pub async fn acting_for<F: std::future::Future>(&self, tenant: &str, f: F) -> F::Output {
        crate::store::scope::acting_for(tenant, f).await
    }

    /// Runs `f` (one request) with its writes' durability waited for once, at its end, for all
    /// of them ([`crate::store::durability::deferred`]); a failed sync is a 503.
    pub async fn durably<F: std::future::Future>(&self, f: F) -> (F::Output, Result<()>) {
        match crate::store::durability::deferred(f).await {
            (out, Ok(())) => (out, Ok(())),
            (out, Err(e)) => {
                tracing::error!(error = %e, "a request's writes could not be made durable");
                let detail = "the store could not confirm the write is on disk; retry".into();
                (out, Err(ScimError::Unavailable { detail, retry_after: 1 }))
            }
        }
    }

    /// Counts one request against the tenant's per-second limit; the count so far.
    pub async fn tick(&self, tenant: &str) -> Result<i64> {
        Ok(self.layout.tick(tenant).await?)
    }
}
