//! Rendering resources for the wire: what is stored elsewhere (a group's members, a user's
//! groups), computed attributes, the projection — and reads answered from the stored text.

use super::protect::effective_roles;
use super::*;
use crate::projection::Projection;

impl Service {
    /// Adds what is stored elsewhere and the projection returns (see `expansion`).
    pub async fn expand(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        doc: &mut Map<String, Value>,
        projection: &Projection<'_>,
        in_list: bool,
    ) -> Result<()> {
        if !expands(kind, projection, in_list) {
            return Ok(()); // nothing to look up for (a list page's users, most often)
        }
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some((name, value)) = self.expansion(ctx, kind, &id, is_inactive(doc), projection, in_list).await? {
            doc.insert(name.into(), value);
        }
        Ok(())
    }

    /// What is stored elsewhere and the projection returns (see `expands`): a group's
    /// `members`, a user's `groups` (`None`: not asked for, or none).
    pub(super) async fn expansion(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        id: &str,
        inactive: bool,
        projection: &Projection<'_>,
        in_list: bool,
    ) -> Result<Option<(&'static str, Value)>> {
        let reference = |kind: &str, id: &str| format!("{}/{kind}/{id}", ctx.base_url);
        let list: Vec<Value> = match kind {
            _ if !expands(kind, projection, in_list) => Vec::new(),
            Kind::Group => {
                let ids = self.layout.members(ctx.tenant(), id).await?;
                ids.iter().map(|u| json!({"value": u, "$ref": reference("Users", u), "type": "User"})).collect()
            }
            // a user the tenant's policy deprovisions belongs to no group (its memberships were
            // removed with the deactivation): nothing to read
            Kind::User if !leaves_groups(ctx, inactive) => {
                let gids = self.layout.groups_of(ctx.tenant(), id).await?;
                let groups = if gids.is_empty() { Vec::new() } else { self.layout.get_many(ctx.tenant(), Kind::Group, &gids).await? };
                groups
                    .iter()
                    .map(|g| json!({"value": g.id(), "$ref": reference("Groups", g.id()), "display": g.doc.get("displayName"), "type": "direct"}))
                    .collect()
            }
            Kind::User | Kind::Declared(_) => Vec::new(),
        };
        let name = if kind == Kind::Group { "members" } else { "groups" };
        Ok((!list.is_empty()).then(|| (name, Value::Array(list))))
    }

    /// `GET /{Users|Groups}/{id}` rendered for the wire. With the default projection, on a
    /// type with nothing hidden and nothing computed, the body is written from the stored text
    /// (`resource::render_members`: nothing is parsed but `meta`); otherwise through `render`.
    pub async fn read(&self, ctx: Ctx<'_>, kind: Kind, s: &StoredText, projection: &Projection<'_>) -> Result<Vec<u8>> {
        let rt = ctx.types.of(kind);
        let computed = kind == Kind::User && ctx.roles().is_some(); // effectiveRoles
        if projection.keeps_stored_members(rt) && !rt.hides_values && !computed {
            let doc = resource::StoredMembers::parse(s.text()).map_err(|e| s.corrupt(e))?;
            let id = doc.id().ok_or_else(|| s.without_id())?;
            let extra = self.expansion(ctx, kind, &id, doc.is_inactive(), projection, false).await?;
            let body = resource::render_members(rt, &doc, Some(&id), ctx.base_url, extra.as_ref().map(|(n, v)| (*n, v)));
            if let Some(body) = body.map_err(|e| s.corrupt(e))? {
                return Ok(body);
            }
        }
        let doc = self.render(ctx, kind, s.parse()?, projection, Written::No).await?;
        Ok(crate::json_text(&doc).into_bytes())
    }

    /// Renders one resource for the wire with its projection. A just-created user belongs to
    /// no group yet, so that read is skipped. After a committed write (`written`), a failed read
    /// of members or groups leaves them out of the response instead of reporting a failure for
    /// a change that happened (the client would retry a create into a 409).
    pub async fn render(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        s: Stored,
        projection: &Projection<'_>,
        written: Written,
    ) -> Result<Map<String, Value>> {
        let rt = ctx.types.of(kind);
        let mut doc = s.doc;
        // `expand` inserts only after its reads succeed, so a failed one leaves `doc` untouched
        if !(written == Written::Created && kind == Kind::User)
            && let Err(e) = self.expand(ctx, kind, &mut doc, projection, false).await
        {
            if written == Written::No {
                return Err(e);
            }
            tracing::warn!(error = %e, "change committed; its response leaves out members/groups");
        }
        if kind == Kind::User && projection.returns(Some(crate::schema::URN_ACCESS), "effectiveRoles") {
            effective_roles(&mut doc, ctx.roles());
        }
        Ok(projection.apply(rt, resource::render(rt, doc, ctx.base_url)))
    }
}

/// Whether the projection returns what is stored elsewhere: a group's `members`; a user's
/// `groups`, which a list returns only when asked for by name (one index query per user would
/// make list pages O(count) queries).
fn expands(kind: Kind, projection: &Projection<'_>, in_list: bool) -> bool {
    match kind {
        Kind::Group => projection.returns(None, "members"),
        Kind::User => projection.returns(None, "groups") && (!in_list || projection.names(None, "groups")),
        Kind::Declared(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::layout::keys::{resource_sk, tenant_pk};
    use crate::store::{Cond, Item, Table, Write};

    /// docs/benchmarks.md: a GET by id with the default projection is written from the stored text. A stored
    /// document spelled as no serializer would write it (spaces, `1.50`) shows which path ran:
    /// the text path copies it as stored, the general one re-serializes it.
    #[tokio::test]
    async fn a_default_read_is_written_from_the_stored_text() {
        let table = std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory());
        let svc = Service::over(table.clone());
        let text = r#"{"id":"u1","userName":"ann","x": [1.50, 2],"meta":{"resourceType":"User"}}"#;
        let item = Item::new(tenant_pk("t"), resource_sk(Kind::User, "u1"), text.to_string(), 1);
        table.write(vec![Write::Put { item, cond: Cond::Always }]).await.unwrap();
        let types = TenantSchemas::builtin();
        let undeclared = resource::Undeclared::default();
        let principal = crate::auth::Principal {
            tenant_id: "t".into(),
            key_id: "k".into(),
            role: "reader".into(),
            rate_limit: None,
            roles_policy: None,
            permissions: vec![],
            deactivation: Default::default(),
            external_id_policy: Default::default(),
            unknown_extensions: Default::default(),
            schemas_version: 0,
        };
        let ctx = Ctx { principal: &principal, base_url: "https://x/scim/v2", types: &types, undeclared: &undeclared };
        let s = svc.get_text(ctx, Kind::User, "u1").await.unwrap();
        let body = String::from_utf8(svc.read(ctx, Kind::User, &s, &Projection::default()).await.unwrap()).unwrap();
        assert!(body.contains(r#""x":[1.50, 2]"#), "{body}");
        assert!(body.ends_with(r#""meta":{"resourceType":"User","location":"https://x/scim/v2/Users/u1"}}"#), "{body}");
        // a projection takes the general path: the same document, re-serialized
        let projection = Projection::new(crate::schema::user_type(), None, Some("userName"));
        let projected = String::from_utf8(svc.read(ctx, Kind::User, &s, &projection).await.unwrap()).unwrap();
        assert!(projected.contains(r#""x":[1.5,2]"#), "{projected}");
    }
}
