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
    faults: Mutex<Vec<Fault>>,
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
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        self.get.fetch_add(1, Ordering::Relaxed);
        self.run(Call::Get, self.inner.get(pk, sk)).await
    }
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>, StoreError> {
        self.get_many.fetch_add(1, Ordering::Relaxed);
        self.run(Call::GetMany, self.inner.get_many(keys)).await
    }
    async fn query(&self, q: &Query) -> Result<Vec<Item>, StoreError> {
        self.query.fetch_add(1, Ordering::Relaxed);
        self.run(Call::Query, self.inner.query(q)).await
    }
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        self.run(Call::Write, self.inner.count(pk, sk, by, expires_at)).await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.write.fetch_add(1, Ordering::Relaxed);
        self.run(Call::Write, self.inner.write(writes)).await
    }
}
