//! Group membership: one item per member (`TENANT#<t>#GROUP#<gid>` / `MEMBER#<uid>`, indexed by
//! user), changed in the resource's transaction when it fits, in undone chunks when not.

use super::*;

/// A membership change: ids to add and ids to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberDelta {
    /// User ids to make members of the group.
    pub add: Vec<String>,
    /// User ids to take out of the group.
    pub remove: Vec<String>,
}

impl MemberDelta {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
    pub(super) fn writes(&self, tenant: &str, gid: &str) -> Vec<Write> {
        let pk = members_pk(tenant, gid);
        let mut w: Vec<Write> = self.add.iter().map(|u| Write::Put { item: member_item(tenant, gid, u), cond: Cond::Always }).collect();
        w.extend(self.remove.iter().map(|u| Write::Delete { pk: pk.clone(), sk: format!("{MEMBER}{u}"), cond: Cond::Always }));
        w
    }
    pub(super) fn inverse(&self) -> MemberDelta {
        MemberDelta { add: self.remove.clone(), remove: self.add.clone() }
    }
}

impl Layout {
    /// Commits `writes` together with a membership change: in one transaction when they fit,
    /// otherwise the members first in chunks (each checking the group still exists) and the
    /// resource writes last, undoing the applied chunks if anything fails.
    pub(super) async fn commit_with_members(
        &self,
        tenant: &str,
        gid: &str,
        mut writes: Vec<Write>,
        roles: Vec<WriteConflict>,
        members: &MemberDelta,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let member_writes = members.writes(tenant, gid);
        let conflict = |index: usize| roles.get(index).cloned().unwrap_or(WriteConflict::Version);
        if writes.len() + member_writes.len() <= crate::store::MAX_TRANSACTION {
            writes.extend(member_writes);
            return self.commit(writes, &roles).await;
        }
        // Too many for one transaction. Membership writes are idempotent, so a chunked apply
        // that fails part-way is undone here, and a client retry converges either way.
        let mut applied = MemberDelta::default();
        let chunk_size = crate::store::MAX_TRANSACTION - writes.len();
        let adds: Vec<&String> = members.add.iter().collect();
        let removes: Vec<&String> = members.remove.iter().collect();
        let mut parts: Vec<MemberDelta> =
            adds.chunks(chunk_size).map(|c| MemberDelta { add: c.iter().map(|s| s.to_string()).collect(), remove: vec![] }).collect();
        parts.extend(removes.chunks(chunk_size).map(|c| MemberDelta { add: vec![], remove: c.iter().map(|s| s.to_string()).collect() }));
        for part in parts {
            if let Err(e) = self.table.write(part.writes(tenant, gid)).await {
                self.undo_members(tenant, gid, &applied).await;
                return Err(e);
            }
            applied.add.extend(part.add);
            applied.remove.extend(part.remove);
        }
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                self.undo_members(tenant, gid, &applied).await;
                match e {
                    StoreError::Conflict { index } => Ok(Err(conflict(index))),
                    other => Err(other),
                }
            }
        }
    }

    pub(super) async fn undo_members(&self, tenant: &str, gid: &str, applied: &MemberDelta) {
        let inverse = applied.inverse().writes(tenant, gid);
        for chunk in inverse.chunks(crate::store::MAX_TRANSACTION) {
            if let Err(e) = self.table.write(chunk.to_vec()).await {
                tracing::error!(group = gid, error = %e, "could not undo a partial membership change; a retry of the request repairs it");
            }
        }
    }

    /// Applies a membership change to an existing group.
    pub async fn change_members(&self, tenant: &str, gid: &str, members: &MemberDelta) -> Result<Result<(), WriteConflict>, StoreError> {
        let check = Write::Check { pk: tenant_pk(tenant), sk: resource_sk(Kind::Group, gid), cond: Cond::Exists };
        self.commit_with_members(tenant, gid, vec![check], vec![WriteConflict::Version], members).await
    }

    /// Every member id of a group, in id order.
    pub async fn members(&self, tenant: &str, gid: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let after = out.last().map(|u| format!("{MEMBER}{u}"));
            let batch = self.table.query(&Query::prefix(members_pk(tenant, gid), MEMBER, after.as_deref(), 1000)).await?;
            let n = batch.len();
            out.extend(batch.iter().map(|i| i.sk.trim_start_matches(MEMBER).to_string()));
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// Whether a group has any member (one read of at most one key).
    pub async fn has_members(&self, tenant: &str, gid: &str) -> Result<bool, StoreError> {
        let q = Query { keys_only: true, ..Query::prefix(members_pk(tenant, gid), MEMBER, None, 1) };
        Ok(!self.table.query(&q).await?.is_empty())
    }

    /// Which of `uids` are members of the group (one batched read, whatever the group's size).
    pub async fn are_members(&self, tenant: &str, gid: &str, uids: &[String]) -> Result<Vec<String>, StoreError> {
        let pk = members_pk(tenant, gid);
        let keys: Vec<(String, String)> = uids.iter().map(|u| (pk.clone(), format!("{MEMBER}{u}"))).collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            for item in self.table.get_many(chunk).await?.into_iter().flatten() {
                out.push(item.sk.trim_start_matches(MEMBER).to_string());
            }
        }
        Ok(out)
    }

    /// The ids of the groups a user belongs to (index query; eventually consistent in DynamoDB).
    pub async fn groups_of(&self, tenant: &str, uid: &str) -> Result<Vec<String>, StoreError> {
        let q = Query {
            index: crate::store::Index::Gsi1,
            pk: user_index_pk(tenant, uid),
            lo: Kind::Group.prefix().to_string(),
            hi: [&*Kind::Group.prefix(), "\u{10FFFF}"].concat(),
            forward: true,
            limit: 10_000,
            keys_only: false,
        };
        Ok(self
            .table
            .query(&q)
            .await?
            .iter()
            .filter_map(|i| i.gsi1.as_ref().map(|(_, s)| s.trim_start_matches(&*Kind::Group.prefix()).to_string()))
            .collect())
    }

    /// Removes a user from every group (deprovisioning); safe to repeat.
    pub async fn remove_from_all_groups(&self, tenant: &str, uid: &str) -> Result<usize, StoreError> {
        let groups = self.groups_of(tenant, uid).await?;
        let writes: Vec<Write> =
            groups.iter().map(|g| Write::Delete { pk: members_pk(tenant, g), sk: format!("{MEMBER}{uid}"), cond: Cond::Always }).collect();
        for chunk in writes.chunks(crate::store::MAX_TRANSACTION) {
            self.table.write(chunk.to_vec()).await?;
        }
        Ok(groups.len())
    }

    /// Removes every member of a group; safe to repeat.
    pub async fn remove_all_members(&self, tenant: &str, gid: &str) -> Result<usize, StoreError> {
        let members = self.members(tenant, gid).await?;
        let delta = MemberDelta { add: vec![], remove: members };
        for chunk in delta.writes(tenant, gid).chunks(crate::store::MAX_TRANSACTION) {
            self.table.write(chunk.to_vec()).await?;
        }
        Ok(delta.remove.len())
    }
}
