//! The tenant's activity log and the counters beside it (the request limit's seconds, the
//! unauthenticated refusals' hours).

use super::*;

impl Layout {
    /// Counts one request in the tenant's current second; returns the count so far.
    pub async fn tick(&self, tenant: &str) -> Result<i64, StoreError> {
        let now = crate::time::unix_now();
        self.table.count(&format!("TENANT#{tenant}#RATE"), &now.to_string(), 1, now + 120).await
    }

    /// Counts an unauthenticated refusal in the tenant's current hour; returns the count (a
    /// counter in the tenant's rate partition that expires after the hour, as the rate limit's
    /// seconds do).
    pub async fn count_refusal(&self, tenant: &str, now: i64) -> Result<i64, StoreError> {
        let hour = now / 3600;
        self.table.count(&format!("TENANT#{tenant}#RATE"), &format!("REFUSED#{hour}"), 1, (hour + 2) * 3600).await
    }

    /// Appends an audit entry to the tenant's partition for the day of `time` (the entry's RFC
    /// 3339 timestamp); kept `retention_days`.
    pub async fn audit(&self, tenant: &str, time: &str, entry: &impl serde::Serialize, retention_days: i64) -> Result<(), StoreError> {
        let day = time.get(..10).unwrap_or("1970-01-01");
        // UUIDv7 is monotonic within a process: entries of one millisecond keep their order
        let suffix = uuid::Uuid::now_v7();
        let mut item = Item::new(
            format!("TENANT#{tenant}#AUDIT#{day}"),
            format!("AT#{:013}#{suffix}", crate::time::unix_millis()),
            crate::json_text(entry),
            1,
        );
        item.expires_at = Some(crate::time::unix_now() + retention_days * 86_400);
        self.table.write(vec![Write::Put { item, cond: Cond::Absent }]).await
    }

    /// The audit entries of a tenant for one day (`YYYY-MM-DD`), oldest first.
    pub async fn audit_entries(&self, tenant: &str, day: &str) -> Result<Vec<Value>, StoreError> {
        self.list_records(&format!("TENANT#{tenant}#AUDIT#{day}"), "AT#", 100_000).await
    }

    /// The newest `limit` entries of a tenant's audit log for one day, newest first (one Query).
    pub async fn recent_audit_entries(&self, tenant: &str, day: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
        let q = Query {
            index: crate::store::Index::Primary,
            pk: format!("TENANT#{tenant}#AUDIT#{day}"),
            lo: "AT#".into(),
            hi: "AT#\u{10FFFF}".into(),
            forward: false,
            limit,
            keys_only: false,
        };
        Ok(self.table.query(&q).await?.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }
}
