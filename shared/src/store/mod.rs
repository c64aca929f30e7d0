//! The storage seam. [`Table`] is a small item store with DynamoDB's semantics (partition and
//! sort keys, one secondary index, conditional writes, all-or-nothing transactions, range
//! queries, TTL); [`dynamo::DynamoTable`] and [`embedded::EmbeddedTable`] implement it.
//! [`layout`] holds the single-table layout on top of it; SCIM rules stay above, AWS types below.

#[cfg(feature = "dynamodb")]
pub mod durability;
pub mod dynamo;
pub mod embedded;
pub mod layout;
pub mod metered;
pub mod scope;
#[cfg(feature = "dynamodb")]
mod sessions;
pub mod wal;
#[cfg(feature = "dynamodb")]
pub mod xray;

use std::collections::BTreeMap;

/// One stored item.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// Partition key.
    pub pk: String,
    /// Sort key, unique within the partition.
    pub sk: String,
    /// Secondary index key (`gsi1pk`, `gsi1sk`), when the item is indexed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<(String, String)>,
    /// The item's payload, JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Optimistic-locking version.
    #[serde(default)]
    pub version: u64,
    /// Numeric attributes (counters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nums: BTreeMap<String, i64>,
    /// Unix seconds after which the item is gone (DynamoDB TTL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// DynamoDB's limit on one item, bytes (400 KB; names and values counted, as [`Item::size`]).
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

impl Item {
    /// The item's size as DynamoDB counts it: every attribute's name and value, strings as
    /// UTF-8 bytes, numbers as about one byte per two digits plus one.
    pub fn size(&self) -> usize {
        let number = |digits: usize| digits.div_ceil(2) + 1;
        let mut n = "pk".len() + self.pk.len() + "sk".len() + self.sk.len();
        if let Some((p, s)) = &self.gsi1 {
            n += "gsi1pk".len() + p.len() + "gsi1sk".len() + s.len();
        }
        n += self.doc.as_ref().map_or(0, |d| "doc".len() + d.len());
        n += "v".len() + number(20);
        n += self.expires_at.map_or(0, |_| "expires_at".len() + number(20));
        n + self.nums.keys().map(|k| "n_".len() + k.len() + number(20)).sum::<usize>()
    }

    /// A new item with a JSON payload.
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, doc: String, version: u64) -> Item {
        Item { pk: pk.into(), sk: sk.into(), doc: Some(doc), version, ..Default::default() }
    }

    /// Whether a TTL has passed (DynamoDB deletes expired items lazily, so readers check too).
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// A condition on the current state of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    /// No condition: the write applies whatever the item's state.
    Always,
    /// The item must not exist (uniqueness claims, creates).
    Absent,
    /// The item must exist.
    Exists,
    /// The item must exist with this version (optimistic locking).
    Version(u64),
}

/// One write of a transaction.
#[derive(Debug, Clone)]
pub enum Write {
    /// Store the item, replacing any item under its keys.
    Put {
        /// The item to store, keys included.
        item: Item,
        /// What must hold of the item currently under those keys.
        cond: Cond,
    },
    /// Remove the item under these keys, if there is one.
    Delete {
        /// Partition key of the item.
        pk: String,
        /// Sort key of the item.
        sk: String,
        /// What must hold of the item before it is removed.
        cond: Cond,
    },
    /// Atomically add to numeric attributes, creating the item if needed (one write per item:
    /// DynamoDB refuses two operations on one item in a transaction).
    Add {
        /// Partition key of the counter item.
        pk: String,
        /// Sort key of the counter item.
        sk: String,
        /// (numeric attribute, amount) pairs to add; an amount may be negative.
        deltas: Vec<(String, i64)>,
    },
    /// Only check a condition.
    Check {
        /// Partition key of the item checked.
        pk: String,
        /// Sort key of the item checked.
        sk: String,
        /// What must hold of the item for the transaction to apply.
        cond: Cond,
    },
}

/// Which key a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The item's own `pk`/`sk`, read strongly consistent.
    Primary,
    /// The secondary index `gsi1` ([`Item::gsi1`]); eventually consistent on DynamoDB.
    Gsi1,
}

/// A range query inside one partition: `lo <= sort key <= hi`.
#[derive(Debug, Clone)]
pub struct Query {
    /// The key the query reads: the primary key or the secondary index.
    pub index: Index,
    /// The partition key (of `index`) to read.
    pub pk: String,
    /// The lowest sort key returned, inclusive.
    pub lo: String,
    /// The highest sort key returned, inclusive.
    pub hi: String,
    /// Ascending sort-key order when true, descending when false.
    pub forward: bool,
    /// Most items returned (expired items do not count).
    pub limit: usize,
    /// Only the keys are needed (walking to a position): stores may skip the payload.
    pub keys_only: bool,
}

impl Query {
    /// Every sort key starting with `prefix`, ascending, after `after` (exclusive) if given.
    pub fn prefix(pk: impl Into<String>, prefix: &str, after: Option<&str>, limit: usize) -> Query {
        let lo = match after {
            Some(a) if a > prefix => format!("{a}\u{1}"),
            _ => prefix.to_string(),
        };
        Query { index: Index::Primary, pk: pk.into(), lo, hi: format!("{prefix}\u{10FFFF}"), forward: true, limit, keys_only: false }
    }
}

/// What caused a store failure (an I/O error, the SDK's error), kept for logs and `source()`.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Failures below the seam. The error module above it maps them to SCIM errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A condition failed; `index` is the failing write's position in the transaction.
    #[error("condition failed on write {index}")]
    Conflict {
        /// Position of the failing write in the transaction, from 0.
        index: usize,
    },
    /// The store asked us to slow down.
    #[error("throttled by the store")]
    Throttled,
    /// An item over a size limit (a resource's document over [`layout::MAX_DOCUMENT_BYTES`],
    /// or any item over DynamoDB's 400 KB, which both stores refuse alike), refused before
    /// anything is written; `what` says which and how large.
    #[error("{what}")]
    TooLarge {
        /// Which item was refused and how large it was, for the client.
        what: String,
    },
    /// The store could not be reached or timed out; safe to retry.
    #[error("store unavailable: {context}{}", causes(.source))]
    Unavailable {
        /// Which store or call failed, and how, for the logs.
        context: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Anything else (misconfiguration, corrupt item).
    #[error("store failure: {context}{}", causes(.source))]
    Other {
        /// What failed, for the logs.
        context: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Cause>,
    },
}

/// `: cause: its cause…` (empty without one): the message shows what went wrong below, while
/// `source()` keeps the error itself.
fn causes(source: &Option<Cause>) -> String {
    let mut out = String::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = source.as_deref().map(|e| e as _);
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

impl StoreError {
    /// A failure described by `context` alone.
    pub fn other(context: impl Into<String>) -> StoreError {
        StoreError::Other { context: context.into(), source: None }
    }

    /// A failure of `context` caused by `source`.
    pub fn caused(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Other { context: context.into(), source: Some(std::sync::Arc::new(source)) }
    }

    /// The store is out of reach for now (`context` says how); the caller may retry.
    pub fn unavailable(context: impl Into<String>) -> StoreError {
        StoreError::Unavailable { context: context.into(), source: None }
    }
}

/// An item as reads hand it out: shared, so a store that keeps items in memory gives them
/// without copying them (a reader that changes one takes its own copy: `Arc::unwrap_or_clone`).
pub type Shared = std::sync::Arc<Item>;

/// The item store every SCIM operation runs on.
#[async_trait::async_trait]
pub trait Table: Send + Sync {
    /// A strongly consistent read of one item.
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError>;
    /// Strongly consistent reads of many items, in the order asked.
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError>;
    /// A range query; returns at most `limit` live items.
    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError>;
    /// Applies every write or none (at most 100 writes).
    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Atomically adds `by` to the counter item's `count` and returns the new value; the item
    /// expires at `expires_at` (rate limiting: not durable, not a change event).
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError>;
    /// Capacity units the store reported so far, (reads, writes), when it reports any.
    fn consumed_capacity(&self) -> Option<(f64, f64)> {
        None
    }
}

/// Most writes in one transaction (DynamoDB's limit).
pub const MAX_TRANSACTION: usize = 100;

#[cfg(test)]
mod tests {
    use super::StoreError;
    use std::error::Error;

    #[test]
    fn a_failure_keeps_its_cause() {
        let e = StoreError::caused("cannot open /data", std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"));
        assert_eq!(e.to_string(), "store failure: cannot open /data: permission denied");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("permission denied"));
        assert!(StoreError::other("corrupt layout marker").source().is_none());
        assert_eq!(StoreError::unavailable("timeout").to_string(), "store unavailable: timeout");
    }
}
