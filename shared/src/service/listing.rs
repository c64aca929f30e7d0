//! Listing: `GET /Users|/Groups` and `.search` planned as key lookups, index pages or cursor
//! walks (RFC 7644 §3.4.2, RFC 9865 cursors), with checkpoints for deep `startIndex` pages.

use super::protect::effective_roles;
use super::*;
use crate::cursor;
use crate::filter::{self, Expr, Lookup, Operand};
use crate::list_query::ListQuery;
use crate::messages::ListResponse;
use crate::path::AttrPath;
use crate::projection::Projection;
use crate::schema::URN_LIST;
use sha2::Sha256;

/// Positions between page checkpoints written while walking a collection.
pub(super) const CHECKPOINT_STRIDE: u64 = 1000;

/// Items read per store query while walking a collection.
pub(super) const WALK_BATCH: usize = 1000;

/// The outcome of a list request, before rendering.
pub struct Page {
    /// How many resources match the query in all (the ListResponse's `totalResults`).
    pub total: Option<u64>,
    /// The 1-based index of the page's first resource; `None` on a cursor page.
    pub start_index: Option<u64>,
    /// The page's resources as stored, not yet rendered or projected.
    pub resources: Vec<Map<String, Value>>,
    /// The sealed RFC 9865 cursor for the rest of the listing, when more remain.
    pub next_cursor: Option<String>,
}

/// Where a filter looks at group members.
pub(super) enum MemberUse {
    None,
    /// Only `members[value eq …]` / `members.value eq …`: these ids are checked directly.
    Ids(Vec<String>),
    /// Anything else: the full list is attached.
    All,
}

pub(super) fn member_use(e: &Expr) -> MemberUse {
    fn is_members(t: &crate::path::Target) -> bool {
        t.ext.is_none() && t.def.name == "members"
    }
    fn walk(e: &Expr, ids: &mut Vec<String>) -> bool {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => walk(a, ids) && walk(b, ids),
            Expr::Not(a) => walk(a, ids),
            Expr::Any { target, inner } if is_members(target) => match inner.as_ref() {
                Expr::Compare { operand: Operand::Element(d), op: filter::CompareOp::Eq, value: Value::String(s) } if d.name == "value" => {
                    ids.push(s.clone());
                    true
                }
                _ => false,
            },
            Expr::Compare { operand: Operand::Root(t), op: filter::CompareOp::Eq, value: Value::String(s) }
                if is_members(t) && t.sub.is_none_or(|s| s.name == "value") =>
            {
                ids.push(s.clone());
                true
            }
            Expr::Compare { operand: Operand::Root(t), .. } | Expr::Present(Operand::Root(t)) if is_members(t) => false,
            Expr::Any { .. } | Expr::Compare { .. } | Expr::Present(_) | Expr::Never => true,
        }
    }
    let mut ids = Vec::new();
    let simple = walk(e, &mut ids);
    match (simple, ids.is_empty()) {
        (false, _) => MemberUse::All,
        (true, true) => MemberUse::None,
        (true, false) => MemberUse::Ids(ids),
    }
}

impl Service {
    /// `GET /Users|/Groups` and `.search`: a ListResponse, projected.
    pub async fn list_response(&self, ctx: Ctx<'_>, kind: Kind, q: &ListQuery) -> Result<ListResponse> {
        let rt = ctx.types.of(kind);
        let projection = Projection::new(rt, q.attributes.as_deref(), q.excluded_attributes.as_deref());
        let page = self.list(ctx, kind, rt, q).await?;
        let mut resources = Vec::with_capacity(page.resources.len());
        let wants_access =
            kind == Kind::User && ctx.roles().is_some() && projection.names(Some(crate::schema::URN_ACCESS), "effectiveRoles");
        for mut d in page.resources {
            d.remove("members"); // attached for filtering only
            self.expand(ctx, kind, &mut d, &projection, true).await?;
            if wants_access {
                // effective roles need the user's groups, even when not returned
                let mut with_groups = d.clone();
                let all = Projection::default();
                self.expand(ctx, kind, &mut with_groups, &all, false).await?;
                effective_roles(&mut with_groups, ctx.roles());
                if let Some(a) = with_groups.remove(crate::schema::URN_ACCESS) {
                    d.insert(crate::schema::URN_ACCESS.into(), a);
                }
            }
            resources.push(Value::Object(projection.apply(rt, resource::render(rt, d, ctx.base_url))));
        }
        Ok(ListResponse {
            schemas: [URN_LIST],
            total_results: page.total,
            items_per_page: resources.len(),
            start_index: page.start_index,
            next_cursor: page.next_cursor,
            resources,
        })
    }

    pub(super) async fn list(&self, ctx: Ctx<'_>, kind: Kind, rt: &ResourceType, q: &ListQuery) -> Result<Page> {
        let expr = q.filter.as_deref().map(|f| filter::compile_str(f, rt)).transpose()?;
        let sort = match &q.sort_by {
            Some(s) => Some(
                AttrPath::parse(s)
                    .ok()
                    .and_then(|p| p.resolve(rt))
                    .ok_or_else(|| ScimError::invalid_value(format!("cannot sort by '{s}': no such attribute")))?,
            ),
            None => None,
        };
        let shape = self.shape(q);
        // Cheap path: the whole collection in id order, counted by the counter item.
        if expr.is_none() && sort.is_none() {
            return match &q.cursor {
                Some(c) => self.cursor_page(ctx, kind, c, q.count, &shape).await,
                None => self.index_page(ctx, kind, q.start_index, q.count).await,
            };
        }
        // Key-lookup path for indexed equality filters; otherwise walk the collection.
        let mut matches = match expr.as_ref().and_then(Expr::lookups) {
            Some(lookups) => self.lookup(ctx, kind, &lookups).await?,
            None => self.walk(ctx, kind).await?,
        };
        if let Some(e) = &expr {
            if kind == Kind::Group {
                self.attach_members_for_filter(ctx, e, &mut matches).await?;
            }
            matches.retain(|s| e.matches(&s.doc));
        }
        if let Some(t) = &sort {
            let mut keyed: Vec<(Option<Value>, Stored)> = matches.into_iter().map(|s| (filter::sort_key(&s.doc, t), s)).collect();
            keyed.sort_by(|a, b| filter::cmp_sort_keys(&a.0, &b.0));
            if q.descending {
                keyed.reverse();
            }
            matches = keyed.into_iter().map(|(_, s)| s).collect();
        }
        let total = matches.len() as u64;
        let offset = match &q.cursor {
            Some(c) if !c.is_empty() => self.open_cursor(ctx, c, &shape).await?.1.unwrap_or(0),
            _ => q.start_index.saturating_sub(1),
        };
        let end = (offset + q.count).min(total);
        let resources: Vec<Map<String, Value>> =
            matches.into_iter().skip(offset as usize).take((end.saturating_sub(offset)) as usize).map(|s| s.doc).collect();
        let next_cursor = match &q.cursor {
            Some(_) if end < total => Some(self.seal_cursor(ctx, None, Some(end), &shape).await?),
            _ => None,
        };
        Ok(Page { total: Some(total), start_index: q.cursor.is_none().then_some(q.start_index), resources, next_cursor })
    }

    /// Puts the members a group filter looks at into the candidates' documents: only the asked
    /// ids for `members[value eq "x"]` (one batched read per group), the full list otherwise.
    pub(super) async fn attach_members_for_filter(&self, ctx: Ctx<'_>, e: &Expr<'_>, groups: &mut [Stored]) -> Result<()> {
        let ids = match member_use(e) {
            MemberUse::None => return Ok(()),
            MemberUse::Ids(ids) => Some(ids),
            MemberUse::All => None,
        };
        for g in groups.iter_mut() {
            let gid = g.id().to_string();
            let present = match &ids {
                Some(ids) => self.layout.are_members(ctx.tenant(), &gid, ids).await?,
                None => self.layout.members(ctx.tenant(), &gid).await?,
            };
            let list: Vec<Value> = present.iter().map(|u| json!({"value": u, "type": "User"})).collect();
            g.doc.insert("members".into(), Value::Array(list));
        }
        Ok(())
    }

    /// A fingerprint of what a cursor was made for: a cursor only continues the same query.
    pub(super) fn shape(&self, q: &ListQuery) -> String {
        use sha2::Digest;
        let text = format!("{:?}|{:?}|{}", q.filter, q.sort_by, q.descending);
        crate::crypto::b64(&Sha256::digest(text.as_bytes())[..9])
    }

    pub(super) async fn lookup(&self, ctx: Ctx<'_>, kind: Kind, lookups: &[Lookup]) -> Result<Vec<Stored>> {
        let mut ids: Vec<String> = Vec::new();
        for l in lookups {
            let id = match l {
                Lookup::Id(id) => Some(id.clone()),
                Lookup::Core { attr, key, .. } if matches!(kind, Kind::Declared(_)) => {
                    self.layout.attribute_holder(ctx.tenant(), kind, &ctx.types.of(kind).schema.id, attr, key).await?
                }
                Lookup::Core { key, .. } => self.layout.claimed_by(ctx.tenant(), kind, Some(key), None).await?,
                Lookup::Unique { ext, attr, key } => self.layout.attribute_holder(ctx.tenant(), kind, ext, attr, key).await?,
                Lookup::ExternalId(e) => {
                    for id in self.layout.external_id_holders(ctx.tenant(), kind, e).await? {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    None
                }
            };
            if let Some(id) = id
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        match ids.len() {
            0 => Ok(Vec::new()),
            1 => Ok(self.layout.get(ctx.tenant(), kind, &ids[0]).await?.into_iter().collect()),
            _ => Ok(self.layout.get_many(ctx.tenant(), kind, &ids).await?),
        }
    }

    /// Every resource of the collection, in id order (non-indexed filters and sorting).
    pub(super) async fn walk(&self, ctx: Ctx<'_>, kind: Kind) -> Result<Vec<Stored>> {
        let mut out: Vec<Stored> = Vec::new();
        loop {
            let after = out.last().map(|s| s.id().to_string());
            let batch = self.layout.page(ctx.tenant(), kind, after.as_deref(), WALK_BATCH).await?;
            let n = batch.len();
            out.extend(batch);
            if n < WALK_BATCH {
                return Ok(out);
            }
        }
    }

    /// startIndex/count over the whole collection: O(count) reads from the nearest checkpoint.
    pub(super) async fn index_page(&self, ctx: Ctx<'_>, kind: Kind, start_index: u64, count: u64) -> Result<Page> {
        let skip_to = start_index - 1;
        // the counters, and (past the first page) the checkpoint the previous page left exactly
        // here, in one read; only a jump to an unvisited position looks for the nearest one
        let (counts, exact) = match skip_to {
            0 => (self.layout.counts(ctx.tenant(), kind).await?, None),
            p => self.layout.counts_and_checkpoint(ctx.tenant(), kind, p).await?,
        };
        let mut page = Page { total: Some(counts.total), start_index: Some(start_index), resources: Vec::new(), next_cursor: None };
        if count == 0 || skip_to >= counts.total {
            return Ok(page);
        }
        let nearest = match (skip_to, exact) {
            (0, _) => None,
            (_, Some(c)) => Some(c),
            (p, None) => self.layout.checkpoint(ctx.tenant(), kind, p, counts.deletes).await?,
        };
        let (mut position, mut after) = match nearest {
            Some((pos, id)) => (pos, Some(id)),
            None => (0, None),
        };
        // walk forward to the page start (keys only), leaving checkpoints behind on long walks
        // and one at the page start, so the same deep page costs O(count) next time
        while position < skip_to {
            let step = (skip_to - position).min(CHECKPOINT_STRIDE);
            let batch = self.layout.page_ids(ctx.tenant(), kind, after.as_deref(), step as usize).await?;
            let Some(last) = batch.last() else {
                return Ok(page);
            };
            position += batch.len() as u64;
            after = Some(last.clone());
            if (batch.len() as u64) < step {
                return Ok(page);
            }
            if position % CHECKPOINT_STRIDE == 0 || position == skip_to {
                self.save_checkpoint(ctx, kind, position, after.as_deref(), counts.deletes).await;
            }
        }
        let items = self.layout.page(ctx.tenant(), kind, after.as_deref(), count as usize).await?;
        let end = skip_to + items.len() as u64;
        if let Some(last) = items.last()
            && end < counts.total
        {
            self.save_checkpoint(ctx, kind, end, Some(last.id()), counts.deletes).await;
        }
        page.resources = items.into_iter().map(|s| s.doc).collect();
        Ok(page)
    }

    /// A checkpoint is an optimisation: failing to write one never fails the request.
    pub(super) async fn save_checkpoint(&self, ctx: Ctx<'_>, kind: Kind, position: u64, after: Option<&str>, deletes: u64) {
        if let Some(a) = after
            && let Err(e) = self.layout.save_checkpoint(ctx.tenant(), kind, position, a, deletes).await
        {
            tracing::warn!(error = %e, "could not save a page checkpoint");
        }
    }

    /// RFC 9865 cursor page over the whole collection: one query from the cursor's position.
    pub(super) async fn cursor_page(&self, ctx: Ctx<'_>, kind: Kind, cursor: &str, count: u64, shape: &str) -> Result<Page> {
        let after = if cursor.is_empty() { None } else { self.open_cursor(ctx, cursor, shape).await?.0 };
        let counts = self.layout.counts(ctx.tenant(), kind).await?;
        let mut items = self.layout.page(ctx.tenant(), kind, after.as_deref(), count as usize + 1).await?;
        let more = items.len() as u64 > count;
        items.truncate(count as usize);
        let next_cursor = match items.last() {
            Some(last) if more => Some(self.seal_cursor(ctx, Some(last.id()), None, shape).await?),
            _ => None,
        };
        Ok(Page { total: Some(counts.total), start_index: None, resources: items.into_iter().map(|s| s.doc).collect(), next_cursor })
    }

    pub(super) async fn seal_key(&self) -> Result<&[u8]> {
        let k = self
            .seal
            .get_or_try_init(|| async {
                self.layout.seal_key().await?.ok_or_else(|| {
                    tracing::error!("the table has no cursor seal: run `scim-admin migrate` (or any scim-admin command) once");
                    ScimError::Unavailable { detail: "cursor pagination is not set up on this deployment yet".into(), retry_after: 60 }
                })
            })
            .await?;
        Ok(k.as_slice())
    }

    /// Seals a cursor (see [`crate::cursor`]) under the deployment's seal key.
    pub(super) async fn seal_cursor(&self, ctx: Ctx<'_>, after: Option<&str>, offset: Option<u64>, shape: &str) -> Result<String> {
        let at = cursor::Position { after: after.map(str::to_string), offset };
        cursor::seal(self.seal_key().await?, ctx.tenant(), shape, at, crate::time::unix_now())
    }

    pub(super) async fn open_cursor(&self, ctx: Ctx<'_>, c: &str, shape: &str) -> Result<(Option<String>, Option<u64>)> {
        let at = cursor::open(self.seal_key().await?, c, ctx.tenant(), shape, crate::time::unix_now())?;
        Ok((at.after, at.offset))
    }
}
