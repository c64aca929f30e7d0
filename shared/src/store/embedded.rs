//! The embedded store: the whole table in memory (ordered maps, same key semantics as DynamoDB),
//! made durable by an append-only log under a data directory. Every committed transaction is
//! one JSON line holding the resulting items; startup replays the log and rewrites it compactly.

use super::{Cond, Index, Item, Query, StoreError, Table, Write};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Key = (String, String);

#[derive(Default)]
struct State {
    items: BTreeMap<Key, Item>,
    /// (gsi1pk, gsi1sk) -> primary keys
    gsi1: BTreeMap<Key, std::collections::BTreeSet<Key>>,
    log: Option<BufWriter<File>>,
}

/// One logged change.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change {
    Put(Item),
    Del(String, String),
}

/// Called with (old image, new image) of every item a committed transaction changed.
pub type ChangeObserver = Box<dyn Fn(Option<&Item>, Option<&Item>) + Send + Sync>;

/// The embedded table. Persistent when opened on a directory, in memory otherwise.
pub struct EmbeddedTable {
    state: Mutex<State>,
    path: Option<PathBuf>,
    observer: std::sync::RwLock<Option<ChangeObserver>>,
    /// Held for the table's life: one process per data directory.
    _lock: Option<File>,
}

impl EmbeddedTable {
    /// A table that lives only in memory (tests, benchmarks of the core).
    pub fn in_memory() -> EmbeddedTable {
        EmbeddedTable { state: Mutex::new(State::default()), path: None, observer: std::sync::RwLock::new(None), _lock: None }
    }

    /// Opens (or creates) the table under `dir`, replaying and compacting its log.
    pub fn open(dir: &Path) -> Result<EmbeddedTable, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::Other(format!("cannot create {}: {e}", dir.display())))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|e| StoreError::Other(format!("cannot open {}: {e}", dir.display())))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Other(format!("{} is in use by another process (is scim-local running on it?)", dir.display())));
        }
        let path = dir.join("table.log");
        let mut state = State::default();
        if path.exists() {
            let f = File::open(&path).map_err(|e| StoreError::Other(format!("cannot open {}: {e}", path.display())))?;
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| StoreError::Other(format!("cannot read {}: {e}", path.display())))?;
                if line.trim().is_empty() {
                    continue;
                }
                // A torn last line (crash mid-write) is dropped; anything else corrupt is an error.
                let changes: Vec<Change> = match serde_json::from_str(&line) {
                    Ok(c) => c,
                    Err(_) => {
                        tracing::warn!(line = n + 1, "ignoring an incomplete log line");
                        continue;
                    }
                };
                for c in changes {
                    apply(&mut state, c);
                }
            }
        }
        // compact: rewrite live items, then append from there
        let tmp = dir.join("table.log.tmp");
        {
            let f = File::create(&tmp).map_err(|e| StoreError::Other(format!("cannot write {}: {e}", tmp.display())))?;
            let mut w = BufWriter::new(f);
            let now = crate::time::unix_now();
            for item in state.items.values().filter(|i| !i.expired(now)) {
                let line = serde_json::to_string(&[Change::Put(item.clone())]).map_err(|e| StoreError::Other(e.to_string()))?;
                writeln!(w, "{line}").map_err(|e| StoreError::Other(e.to_string()))?;
            }
            w.flush().map_err(|e| StoreError::Other(e.to_string()))?;
            w.get_ref().sync_all().map_err(|e| StoreError::Other(e.to_string()))?;
        }
        fs::rename(&tmp, &path).map_err(|e| StoreError::Other(e.to_string()))?;
        let f = OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::Other(e.to_string()))?;
        state.log = Some(BufWriter::new(f));
        Ok(EmbeddedTable { state: Mutex::new(state), path: Some(path), observer: std::sync::RwLock::new(None), _lock: Some(lock) })
    }

    /// Sets the change feed (the local stand-in for DynamoDB Streams): called in commit order,
    /// after each transaction, with the old and new image of every changed item.
    pub fn on_change(&self, f: ChangeObserver) {
        if let Ok(mut o) = self.observer.write() {
            *o = Some(f);
        }
    }

    /// The log file, when persistent.
    pub fn log_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Other("embedded store lock poisoned".into()))
    }
}

/// Applies one change; returns the item it replaced or removed.
fn apply(state: &mut State, c: Change) -> Option<Item> {
    match c {
        Change::Put(item) => {
            let key = (item.pk.clone(), item.sk.clone());
            if let Some(g) = &item.gsi1 {
                state.gsi1.entry(g.clone()).or_default().insert(key.clone());
            }
            let new_gsi = item.gsi1.clone();
            let old = state.items.insert(key.clone(), item);
            if let Some(old_gsi) = old.as_ref().and_then(|o| o.gsi1.as_ref()).filter(|g| Some(*g) != new_gsi.as_ref()) {
                unindex(state, old_gsi, &key);
            }
            old
        }
        Change::Del(pk, sk) => {
            let key = (pk, sk);
            let old = state.items.remove(&key);
            if let Some(g) = old.as_ref().and_then(|o| o.gsi1.as_ref()) {
                unindex(state, g, &key);
            }
            old
        }
    }
}

fn unindex(state: &mut State, g: &Key, key: &Key) {
    if let Some(set) = state.gsi1.get_mut(g) {
        set.remove(key);
        if set.is_empty() {
            state.gsi1.remove(g);
        }
    }
}

fn holds(cond: Cond, current: Option<&Item>) -> bool {
    match cond {
        Cond::Always => true,
        Cond::Absent => current.is_none(),
        Cond::Exists => current.is_some(),
        Cond::Version(v) => current.is_some_and(|i| i.version == v),
    }
}

#[async_trait::async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let now = crate::time::unix_now();
        let s = self.lock()?;
        Ok(s.items.get(&(pk.to_string(), sk.to_string())).filter(|i| !i.expired(now)).cloned())
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Item>>, StoreError> {
        let now = crate::time::unix_now();
        let s = self.lock()?;
        Ok(keys.iter().map(|k| s.items.get(k).filter(|i| !i.expired(now)).cloned()).collect())
    }

    async fn query(&self, q: &Query) -> Result<Vec<Item>, StoreError> {
        let now = crate::time::unix_now();
        let s = self.lock()?;
        if q.lo > q.hi {
            return Ok(Vec::new());
        }
        let lo = (q.pk.clone(), q.lo.clone());
        let hi = (q.pk.clone(), q.hi.clone());
        let mut out = Vec::new();
        match q.index {
            Index::Primary => {
                let range = s.items.range(lo..=hi);
                let it: Box<dyn Iterator<Item = (&Key, &Item)>> = if q.forward { Box::new(range) } else { Box::new(range.rev()) };
                for (_, item) in it.filter(|(_, i)| !i.expired(now)).take(q.limit) {
                    out.push(item.clone());
                }
            }
            Index::Gsi1 => {
                let range = s.gsi1.range(lo..=hi);
                let it: Box<dyn Iterator<Item = (&Key, &std::collections::BTreeSet<Key>)>> =
                    if q.forward { Box::new(range) } else { Box::new(range.rev()) };
                'outer: for (_, keys) in it {
                    for k in keys {
                        if let Some(item) = s.items.get(k).filter(|i| !i.expired(now)) {
                            out.push(item.clone());
                            if out.len() >= q.limit {
                                break 'outer;
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        let now = crate::time::unix_now();
        let mut s = self.lock()?;
        let key = (pk.to_string(), sk.to_string());
        let item = s.items.entry(key).or_insert_with(|| Item { pk: pk.to_string(), sk: sk.to_string(), ..Default::default() });
        if item.expired(now) {
            item.nums.clear();
        }
        item.expires_at = Some(expires_at);
        let n = item.nums.entry("count".into()).or_insert(0);
        *n += by;
        Ok(*n)
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.len() > super::MAX_TRANSACTION {
            return Err(StoreError::Other(format!("{} writes exceed one transaction", writes.len())));
        }
        let now = crate::time::unix_now();
        let mut s = self.lock()?;
        // check every condition first: all or nothing
        for (index, w) in writes.iter().enumerate() {
            let (pk, sk, cond) = match w {
                Write::Put { item, cond } => (&item.pk, &item.sk, *cond),
                Write::Delete { pk, sk, cond } | Write::Check { pk, sk, cond } => (pk, sk, *cond),
                Write::Add { .. } => continue,
            };
            let current = s.items.get(&(pk.clone(), sk.clone())).filter(|i| !i.expired(now));
            if !holds(cond, current) {
                return Err(StoreError::Conflict { index });
            }
        }
        let mut changes: Vec<Change> = Vec::with_capacity(writes.len());
        for w in writes {
            match w {
                Write::Put { item, .. } => changes.push(Change::Put(item)),
                Write::Delete { pk, sk, .. } => changes.push(Change::Del(pk, sk)),
                Write::Add { pk, sk, deltas } => {
                    // start from this transaction's own earlier change to the item, if any
                    let staged = changes.iter().rev().find_map(|c| match c {
                        Change::Put(i) if i.pk == pk && i.sk == sk => Some(Some(i.clone())),
                        Change::Del(p, k) if *p == pk && *k == sk => Some(None),
                        _ => None,
                    });
                    let base = match staged {
                        Some(b) => b,
                        None => s.items.get(&(pk.clone(), sk.clone())).cloned(),
                    };
                    let mut item = base.unwrap_or_else(|| Item { pk, sk, ..Default::default() });
                    for (field, by) in deltas {
                        *item.nums.entry(field).or_insert(0) += by;
                    }
                    changes.push(Change::Put(item));
                }
                Write::Check { .. } => {}
            }
        }
        if let Some(log) = s.log.as_mut() {
            let line = serde_json::to_string(&changes).map_err(|e| StoreError::Other(e.to_string()))?;
            writeln!(log, "{line}")
                .and_then(|_| log.flush())
                .map_err(|e| StoreError::Unavailable(format!("embedded log write failed: {e}")))?;
        }
        let observer = self.observer.read().ok();
        let observer = observer.as_ref().and_then(|o| o.as_ref());
        for c in changes {
            let new = match (observer, &c) {
                (Some(_), Change::Put(i)) => Some(i.clone()),
                _ => None,
            };
            let old = apply(&mut s, c);
            if let Some(f) = observer {
                f(old.as_ref().filter(|o| !o.expired(now)), new.as_ref());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str, sk: &str, cond: Cond) -> Write {
        Write::Put { item: Item::new(pk, sk, "{}".into(), 1), cond }
    }

    #[tokio::test]
    async fn transactions_are_all_or_nothing_and_durable() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            t.write(vec![put("p", "a", Cond::Absent), Write::Add { pk: "p".into(), sk: "n".into(), deltas: vec![("c".into(), 2)] }])
                .await
                .unwrap();
            let e = t.write(vec![put("p", "b", Cond::Absent), put("p", "a", Cond::Absent)]).await.unwrap_err();
            assert!(matches!(e, StoreError::Conflict { index: 1 }));
            assert!(t.get("p", "b").await.unwrap().is_none(), "nothing of a failed transaction is written");
        }
        let t = EmbeddedTable::open(&dir).unwrap();
        assert!(EmbeddedTable::open(&dir).is_err(), "one process per data directory");
        assert!(t.get("p", "a").await.unwrap().is_some());
        assert_eq!(t.get("p", "n").await.unwrap().unwrap().nums["c"], 2);
        let q = t.query(&Query::prefix("p", "", None, 10)).await.unwrap();
        assert_eq!(q.len(), 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
