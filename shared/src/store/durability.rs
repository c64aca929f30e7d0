//! When the embedded store acknowledges a write: after its frame is on stable storage
//! ([`Durability::Sync`], the default), or as soon as it is written to the file
//! ([`Durability::Async`]: a killed process loses nothing, a power cut may lose the last writes).
//!
//! Sync is a group commit: a writer that finds no sync running starts one (`fdatasync` of the
//! log) covering every frame appended so far; writers arriving meanwhile wait for the next one,
//! which covers all of them. So the cost is one sync per batch of concurrent writes, not one per
//! write. A write's change is visible to readers once appended (as in DynamoDB, a reader may see
//! a write its writer has not been told of yet); only the answer to the writer waits.

use std::fs::File;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

tokio::task_local! {
    /// The syncs a [`deferred`] scope still owes its writes.
    static OWED: std::cell::RefCell<Vec<(Arc<GroupSync>, u64)>>;
}

/// Runs `f` with the syncs its writes need owed instead of waited for, then waits for them all
/// at once: a request that writes its resource and then its audit entry waits for one sync
/// covering both, not two in a row. Nothing `f` returns is acknowledged to anyone before the
/// second part says the writes are on stable storage; a failed sync is its error.
pub async fn deferred<F: Future>(f: F) -> (F::Output, std::io::Result<()>) {
    // within an enclosing scope (a Bulk operation within its request): owed to that one
    if OWED.try_with(|_| ()).is_ok() {
        return (f.await, Ok(()));
    }
    let (out, owed) = OWED
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let out = f.await;
            (out, OWED.with(|o| std::mem::take(&mut *o.borrow_mut())))
        })
        .await;
    for (g, end) in owed {
        if let Err(e) = g.wait(end).await {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

/// Owes the sync of `end` bytes to the enclosing [`deferred`] scope; `false` outside one.
pub(super) fn owe(g: &Arc<GroupSync>, end: u64) -> bool {
    OWED.try_with(|o| {
        let mut o = o.borrow_mut();
        match o.iter_mut().find(|(h, _)| Arc::ptr_eq(h, g)) {
            Some((_, e)) => *e = (*e).max(end),
            None => o.push((g.clone(), end)),
        }
    })
    .is_ok()
}

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After its frame is on stable storage (group commit).
    #[default]
    Sync,
    /// After its frame is written to the file (the kernel's page cache).
    Async,
}

impl Durability {
    /// Parses `sync` or `async`.
    pub fn parse(s: &str) -> Option<Durability> {
        match s {
            "sync" => Some(Durability::Sync),
            "async" => Some(Durability::Async),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Progress {
    /// Log bytes known to be on stable storage.
    synced: u64,
    /// A sync is running.
    leader: bool,
}

/// The group commit of one log file.
pub(super) struct GroupSync {
    file: Arc<File>,
    /// Log bytes appended so far (every byte below it is written to the file).
    appended: AtomicU64,
    progress: std::sync::Mutex<Progress>,
    done: tokio::sync::Notify,
    /// Syncs run, for the tests and the benchmark's report.
    syncs: AtomicU64,
    /// A sync failed: what the disk holds is unknown, the log takes no more writes.
    pub(super) failed: AtomicBool,
}

impl GroupSync {
    /// The group commit of `file`, whose first `len` bytes are already on stable storage.
    pub(super) fn new(file: File, len: u64) -> GroupSync {
        GroupSync {
            file: Arc::new(file),
            appended: AtomicU64::new(len),
            progress: std::sync::Mutex::new(Progress { synced: len, leader: false }),
            done: tokio::sync::Notify::new(),
            syncs: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// Notes that the log now ends at `end` (called in append order, under the table's lock).
    pub(super) fn appended(&self, end: u64) {
        self.appended.fetch_max(end, Ordering::AcqRel);
    }

    /// How many syncs have run.
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Returns once the log's first `end` bytes are on stable storage.
    pub(super) async fn wait(&self, end: u64) -> std::io::Result<()> {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            // registered before the check, so a sync finishing in between still wakes us
            notified.as_mut().enable();
            enum Turn {
                Done,
                Wait,
                Lead,
            }
            let turn = {
                let mut p = self.progress.lock().map_err(|_| std::io::Error::other("group commit lock poisoned"))?;
                if p.synced >= end {
                    Turn::Done
                } else if p.leader {
                    Turn::Wait
                } else {
                    p.leader = true;
                    Turn::Lead
                }
            };
            match turn {
                Turn::Done => return Ok(()),
                Turn::Wait => {
                    notified.await;
                    continue;
                }
                Turn::Lead => {}
            }
            let result = self.sync_once().await;
            if result.is_err() {
                self.failed.store(true, Ordering::Release);
            }
            if let Ok(mut p) = self.progress.lock() {
                p.leader = false;
                if let Ok(covered) = result {
                    p.synced = p.synced.max(covered);
                }
            }
            self.done.notify_waiters();
            result?;
        }
    }

    /// One `fdatasync`, covering every byte appended before it started; returns that length.
    async fn sync_once(&self) -> std::io::Result<u64> {
        let covered = self.appended.load(Ordering::Acquire);
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || file.sync_data()).await.map_err(std::io::Error::other)??;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(covered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_syncs_and_each_waits_for_its_own_bytes() {
        let path = std::env::temp_dir().join(format!("group-sync-{}", uuid::Uuid::now_v7()));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let g = Arc::new(GroupSync::new(file.try_clone().unwrap(), 0));
        g.wait(0).await.unwrap();
        assert_eq!(g.syncs(), 0, "nothing appended: nothing to sync");
        let mut tasks = Vec::new();
        for i in 1..=64u64 {
            g.appended(i);
            let g = g.clone();
            tasks.push(tokio::spawn(async move { g.wait(i).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let syncs = g.syncs();
        assert!((1..64).contains(&syncs), "64 writers, {syncs} syncs: shared, and at least one");
        g.wait(64).await.unwrap();
        assert_eq!(g.syncs(), syncs, "bytes already synced wait for nothing");
        let _ = std::fs::remove_file(&path);
    }
}
