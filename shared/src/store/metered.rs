//! A [`Table`] wrapper that counts round trips per call kind, models the capacity units DynamoDB
//! would charge for them, and can inject faults: for the cost figures in the bench and for
//! failure tests. Costs nothing when unused.
//!
//! The capacity model applies DynamoDB's published rules to the items each call moves, sized as
//! the DynamoDB store writes them (attribute names plus values): a strongly consistent read costs
//! 1 RCU per 4 KB (at least 1, found or not; an index query, eventually consistent, half), a
//! query rounds the sum of what it read, a write 1 WCU per KB (deletes and counter updates 1),
//! and every action of a transaction twice that (condition checks included). An item in the
//! index (`gsi1`) costs its index a write too, at the standard rate (1 WCU per KB written there,
//! 1 for removing an entry): DynamoDB propagates index changes outside the transaction. Which
//! deleted items had an index entry is read before the delete (uncounted, and left out of
//! [`Table::consumed_capacity`]).

use super::{Index, Item, Query, Shared, StoreError, Table, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Round trips made, by kind, and the capacity they would consume.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    /// Single-item reads ([`Table::get`]).
    pub get: u64,
    /// Batch reads ([`Table::get_many`]).
    pub get_many: u64,
    /// Range queries ([`Table::query`]).
    pub query: u64,
    /// Transactions and counter updates ([`Table::write`], [`Table::count`]).
    pub write: u64,
    /// Modelled read capacity units.
    pub rcu: f64,
    /// Modelled write capacity units.
    pub wcu: f64,
}

impl Counts {
    /// All round trips.
    pub fn total(&self) -> u64 {
        self.get + self.get_many + self.query + self.write
    }
}

/// Counts calls and injects queued faults into the wrapped table.
pub struct Metered {
    inner: Arc<dyn Table>,
    get: AtomicU64,
    get_many: AtomicU64,
    query: AtomicU64,
    write: AtomicU64,
    /// Modelled capacity, thousandths of a unit: reads, writes.
    units: [AtomicU64; 2],
    /// Read capacity the store reported for this wrapper's own look-ups, thousandths.
    own_reads: AtomicU64,
    faults: Mutex<Vec<Fault>>,
}

/// An item's size as DynamoDB counts it: attribute names and values, as the DynamoDB store
/// writes them (`pk`, `sk`, `gsi1pk`, `gsi1sk`, `doc`, `v`, `expires_at`, `n_<counter>`).
pub fn item_size(i: &Item) -> usize {
    let digits = |n: i64| n.to_string().len();
    let mut size = 2 + i.pk.len() + 2 + i.sk.len() + 1 + digits(i.version as i64);
    if let Some((p, s)) = &i.gsi1 {
        size += 6 + p.len() + 6 + s.len();
    }
    size += i.doc.as_ref().map_or(0, |d| 3 + d.len());
    size += i.expires_at.map_or(0, |t| 10 + digits(t));
    size + i.nums.iter().map(|(k, v)| 2 + k.len() + digits(*v)).sum::<usize>()
}

fn blocks(bytes: usize, block: usize) -> u64 {
    bytes.div_ceil(block).max(1) as u64
}

/// A planned failure: of which call kind, after how many such calls, which error, and whether the
/// call still takes effect (a reply lost after the store applied it).
struct Fault {
    kind: Option<Call>,
    skip: usize,
    error: StoreError,
    applied: bool,
}

/// A kind of store call, for targeted fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// A single-item read ([`Table::get`]).
    Get,
    /// A batch read ([`Table::get_many`]).
    GetMany,
    /// A range query ([`Table::query`]).
    Query,
    /// A transaction or a counter update ([`Table::write`], [`Table::count`]).
    Write,
}

impl Metered {
    /// Wraps a table.
    pub fn new(inner: Arc<dyn Table>) -> Metered {
        Metered {
            inner,
            get: AtomicU64::new(0),
            get_many: AtomicU64::new(0),
            query: AtomicU64::new(0),
            write: AtomicU64::new(0),
            units: Default::default(),
            own_reads: AtomicU64::new(0),
            faults: Mutex::new(Vec::new()),
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        Counts {
            get: self.get.load(Ordering::Relaxed),
            get_many: self.get_many.load(Ordering::Relaxed),
            query: self.query.load(Ordering::Relaxed),
            write: self.write.load(Ordering::Relaxed),
            rcu: self.units[0].load(Ordering::Relaxed) as f64 / 1000.0,
            wcu: self.units[1].load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    fn charge(&self, read: u64, write: u64) {
        self.units[0].fetch_add(read, Ordering::Relaxed);
        self.units[1].fetch_add(write, Ordering::Relaxed);
    }

    /// Makes the next call (of any kind) fail with `e`.
    pub fn fail_next(&self, e: StoreError) {
        self.fail_nth(None, 0, e);
    }

    /// Makes a later call of `kind` fail with `e`: `skip` calls of that kind pass first.
    pub fn fail_nth(&self, kind: Option<Call>, skip: usize, e: StoreError) {
        if let Ok(mut f) = self.faults.lock() {
            f.push(Fault { kind, skip, error: e, applied: false });
        }
    }

    /// Like `fail_nth`, but the call is carried out before the error is returned: the store did
    /// the work and the reply was lost (a dropped connection, a client-side timeout).
    pub fn fail_nth_after_applying(&self, kind: Option<Call>, skip: usize, e: StoreError) {
        if let Ok(mut f) = self.faults.lock() {
            f.push(Fault { kind, skip, error: e, applied: true });
        }
    }

    /// Drops every planned failure; returns how many had not fired.
    pub fn clear_faults(&self) -> usize {
        self.faults.lock().map(|mut f| std::mem::take(&mut *f).len()).unwrap_or(0)
    }

    /// The failure planned for this call, if any: `Some((error, applied))`.
    fn fault(&self, call: Call) -> Option<(StoreError, bool)> {
        let Ok(mut f) = self.faults.lock() else { return None };
        let i = f.iter().position(|x| x.kind.is_none_or(|k| k == call))?;
        if f[i].skip > 0 {
            f[i].skip -= 1;
            return None;
        }
        let x = f.remove(i);
        Some((x.error, x.applied))
    }

    /// Runs a call through the planned failures.
    async fn run<T>(&self, call: Call, fut: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        match self.fault(call) {
            None => fut.await,
            Some((e, false)) => Err(e),
            Some((e, true)) => {
                fut.await?;
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl Table for Metered {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError> {
        self.get.fetch_add(1, Ordering::Relaxed);
        let got = self.run(Call::Get, self.inner.get(pk, sk)).await?;
        self.charge(1000 * blocks(got.as_deref().map_or(0, item_size), 4096), 0);
        Ok(got)
    }
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError> {
        self.get_many.fetch_add(1, Ordering::Relaxed);
        let got = self.run(Call::GetMany, self.inner.get_many(keys)).await?;
        self.charge(got.iter().map(|i| 1000 * blocks(i.as_deref().map_or(0, item_size), 4096)).sum(), 0);
        Ok(got)
    }
    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError> {
        self.query.fetch_add(1, Ordering::Relaxed);
        let got = self.run(Call::Query, self.inner.query(q)).await?;
        let units = 1000 * blocks(got.iter().map(|i| item_size(i)).sum(), 4096);
        self.charge(if q.index == Index::Gsi1 { units / 2 } else { units }, 0);
        Ok(got)
    }
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        let n = self.run(Call::Write, self.inner.count(pk, sk, by, expires_at)).await?;
        self.charge(0, 1000);
        Ok(n)
    }

    fn consumed_capacity(&self) -> Option<(f64, f64)> {
        let (read, write) = self.inner.consumed_capacity()?;
        Some((read - self.own_reads.load(Ordering::Relaxed) as f64 / 1000.0, write))
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        let single = writes.len() == 1;
        let (mut read, mut write) = (0, 0);
        for w in &writes {
            match w {
                Write::Put { item, .. } => write += blocks(item_size(item), 1024),
                Write::Delete { .. } | Write::Add { .. } => write += 1,
                // alone it is a read; in a transaction a check is charged like a write
                Write::Check { .. } if single => read += 1,
                Write::Check { .. } => write += 1,
            }
        }
        let index = self.index_writes(&writes).await;
        let factor = if single { 1000 } else { 2000 };
        self.run(Call::Write, self.inner.write(writes)).await?;
        self.charge(read * 1000, write * factor + index * 1000);
        Ok(())
    }
}

impl Metered {
    /// The index writes the writes cause: each put of an item with an index entry, by its size;
    /// each delete of an item that has one (read first, uncounted), 1.
    async fn index_writes(&self, writes: &[Write]) -> u64 {
        let puts: u64 = writes
            .iter()
            .map(|w| match w {
                Write::Put { item, .. } if item.gsi1.is_some() => blocks(item_size(item), 1024),
                _ => 0,
            })
            .sum();
        let deleted: Vec<(String, String)> = writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete { pk, sk, .. } => Some((pk.clone(), sk.clone())),
                _ => None,
            })
            .collect();
        if deleted.is_empty() {
            return puts;
        }
        let reported = || self.inner.consumed_capacity().map_or(0.0, |c| c.0);
        let before = reported();
        let old = self.inner.get_many(&deleted).await.unwrap_or_default();
        self.own_reads.fetch_add(((reported() - before) * 1000.0).round() as u64, Ordering::Relaxed);
        puts + old.iter().flatten().filter(|i| i.gsi1.is_some()).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Cond, embedded::EmbeddedTable};

    fn indexed(sk: &str) -> Item {
        Item { gsi1: Some(("U#u".into(), sk.into())), ..Item::new("G#g", sk, "{}".into(), 1) }
    }

    #[tokio::test]
    async fn an_indexed_item_costs_its_index_a_write_when_put_and_when_deleted() {
        let m = Metered::new(Arc::new(EmbeddedTable::in_memory()));
        let put = |i: Item| Write::Put { item: i, cond: Cond::Always };
        // a transaction of two puts, one indexed: 2 × 2 WCU, and 1 for the index
        m.write(vec![put(indexed("MEMBER#1")), put(Item::new("G#g", "META", "{}".into(), 1))]).await.unwrap();
        assert_eq!(m.counts().wcu, 5.0);
        // deleting the indexed one and the other: 2 × 2, and 1 for removing the index entry
        let del = |sk: &str| Write::Delete { pk: "G#g".into(), sk: sk.into(), cond: Cond::Always };
        m.write(vec![del("MEMBER#1"), del("META")]).await.unwrap();
        assert_eq!(m.counts().wcu, 10.0);
        // the look-up of what was deleted is no round trip of the caller's
        assert_eq!((m.counts().get, m.counts().get_many, m.counts().write), (0, 0, 2));
        // an unindexed put alone: 1
        m.write(vec![put(Item::new("G#g", "OTHER", "{}".into(), 1))]).await.unwrap();
        assert_eq!(m.counts().wcu, 11.0);
    }
}
