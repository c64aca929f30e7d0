//! A [`Table`] wrapper that counts round trips per call kind and can inject faults, for the
//! cost figures in the bench and for failure tests. Costs nothing when unused.

use super::{Item, Query, StoreError, Table, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Round trips made, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub get: u64,
    pub get_many: u64,
    pub query: u64,
    pub write: u64,
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
    faults: Mutex<Vec<(Option<Call>, usize, StoreError)>>,
}

/// A kind of store call, for targeted fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Get,
    GetMany,
    Query,
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
        }
    }

    /// Makes the next call (of any kind) fail with `e`.
    pub fn fail_next(&self, e: StoreError) {
        self.fail_nth(None, 0, e);
    }

    /// Makes a later call of `kind` fail with `e`: `skip` calls of that kind pass first.
    pub fn fail_nth(&self, kind: Option<Call>, skip: usize, e: StoreError) {
        if let Ok(mut f) = self.faults.lock() {
            f.push((kind, skip, e));
        }
    }

    fn fault(&self, call: Call) -> Result<(), StoreError> {
        let Ok(mut f) = self.faults.lock() else { return Ok(()) };
        let Some(i) = f.iter().position(|(k, _, _)| k.is_none_or(|k| k == call)) else { return Ok(()) };
        if f[i].1 > 0 {
            f[i].1 -= 1;
            return Ok(());
        }
        Err(f.remove(i).2)
    }
}

#[async_trait::async_trait]
impl Table for Metered {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get.fetch_add(1, Ordering::Relaxed);
        self.fault(Call::Get)?;
        self.inner.get(pk, sk).await
    }
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>, StoreError> {
        self.get_many.fetch_add(1, Ordering::Relaxed);
        self.fault(Call::GetMany)?;
        self.inner.get_many(keys).await
    }
    async fn query(&self, q: &Query) -> Result<Vec<Item>, StoreError> {
        self.query.fetch_add(1, Ordering::Relaxed);
        self.fault(Call::Query)?;
        self.inner.query(q).await
    }
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        self.fault(Call::Write)?;
        self.inner.count(pk, sk, by, expires_at).await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        self.fault(Call::Write)?;
        self.inner.write(writes).await
    }
}
