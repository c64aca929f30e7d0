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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
