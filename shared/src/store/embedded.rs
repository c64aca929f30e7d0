//! The embedded store: the whole table in memory (ordered maps, same key semantics as DynamoDB),
//! made durable by an append-only log under a data directory ([`super::wal`]): every committed
//! transaction is one frame holding the resulting items, appended before the change is applied;
//! startup replays the log and rewrites it compactly. Logs written as JSON lines by earlier
//! versions are read once and rewritten in frames.

use super::wal::{self, Change};
use super::{Cond, Index, Item, Query, Shared, StoreError, Table, Write};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufWriter, Write as _};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Key = (String, String);

/// Partition key → sort key → value: a point read looks both up by `&str` (no key is built),
/// and a range query walks one partition.
type Partitions<V> = BTreeMap<String, BTreeMap<String, V>>;

#[derive(Default)]
struct State {
    items: Partitions<Shared>,
    /// gsi1pk → gsi1sk → primary keys
    gsi1: Partitions<BTreeSet<Key>>,
    log: Option<Log>,
}

impl State {
    fn item(&self, pk: &str, sk: &str) -> Option<&Shared> {
        self.items.get(pk)?.get(sk)
    }

    fn live(&self, pk: &str, sk: &str, now: i64) -> Option<&Shared> {
        self.item(pk, sk).filter(|i| !i.expired(now))
    }
}

/// The entries of one partition whose sort keys are within `lo..=hi`, in either order.
fn sort_range<'a, V>(
    p: &'a Partitions<V>,
    pk: &str,
    lo: &str,
    hi: &str,
    forward: bool,
) -> Box<dyn Iterator<Item = (&'a String, &'a V)> + 'a> {
    let Some(partition) = p.get(pk) else { return Box::new(std::iter::empty()) };
    let range = partition.range::<str, _>((Bound::Included(lo), Bound::Included(hi)));
    if forward { Box::new(range) } else { Box::new(range.rev()) }
}

/// The open log: appends go straight to the file (one write per transaction, no user-space
/// buffer to lose), and a failed append is cut off so the log ends with a whole frame.
struct Log {
    file: File,
    len: u64,
    frame: Vec<u8>,
    /// A failed append could not be cut off: nothing more is appended (a frame after a torn
    /// one would make the log unreadable), every later write fails until a restart.
    broken: bool,
}

impl Log {
    fn append(&mut self, changes: &[Change]) -> std::io::Result<()> {
        if self.broken {
            return Err(std::io::Error::other("an earlier append failed and could not be undone; restart to recover"));
        }
        self.frame.clear();
        wal::encode(changes, &mut self.frame);
        if let Err(e) = self.file.write_all(&self.frame) {
            self.broken = self.file.set_len(self.len).is_err();
            return Err(e);
        }
        self.len += self.frame.len() as u64;
        Ok(())
    }
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

    /// Opens (or creates) the table under `dir`, replaying and compacting its log. The directory
    /// and the log are readable by their owner only (they hold key hashes, the cursor seal and
    /// people's data).
    pub fn open(dir: &Path) -> Result<EmbeddedTable, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::caused(format!("cannot create {}", dir.display()), e))?;
        owner_only(dir, 0o700)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|e| StoreError::caused(format!("cannot open {}", dir.display()), e))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::other(format!("{} is in use by another process (is scim-local running on it?)", dir.display())));
        }
        let path = dir.join("table.log");
        let mut state = State::default();
        if path.exists() {
            let bytes = fs::read(&path).map_err(|e| StoreError::caused(format!("cannot read {}", path.display()), e))?;
            if let Some(frames) = bytes.strip_prefix(wal::MAGIC) {
                let replayed = wal::replay(frames, |c| {
                    apply(&mut state, c);
                })
                .map_err(|d| {
                    StoreError::other(format!(
                        "{} is damaged at byte {} (not a torn append: a whole frame follows); nothing was changed. \
                         Move the file away to start empty, or restore it from a copy",
                        path.display(),
                        d.offset + wal::MAGIC.len()
                    ))
                })?;
                if replayed.torn > 0 {
                    tracing::warn!(bytes = replayed.torn, "dropping a torn last log frame (the process stopped mid-write)");
                }
            } else {
                replay_json_lines(&bytes, &mut state);
            }
        }
        // compact: rewrite live items, then append from there
        let tmp = dir.join("table.log.tmp");
        let len = {
            let f = File::create(&tmp).map_err(|e| StoreError::caused(format!("cannot write {}", tmp.display()), e))?;
            owner_only(&tmp, 0o600)?;
            let mut w = BufWriter::new(f);
            let now = crate::time::unix_now();
            let mut frame = Vec::new();
            let mut len = wal::MAGIC.len() as u64;
            w.write_all(wal::MAGIC).map_err(|e| StoreError::caused(format!("cannot write {}", tmp.display()), e))?;
            for item in state.items.values().flat_map(BTreeMap::values).filter(|i| !i.expired(now)) {
                frame.clear();
                wal::encode_put(item, &mut frame);
                w.write_all(&frame).map_err(|e| StoreError::caused(format!("cannot write {}", tmp.display()), e))?;
                len += frame.len() as u64;
            }
            w.flush().map_err(|e| StoreError::caused(format!("cannot write {}", tmp.display()), e))?;
            w.get_ref().sync_all().map_err(|e| StoreError::caused(format!("cannot sync {}", tmp.display()), e))?;
            len
        };
        fs::rename(&tmp, &path).map_err(|e| StoreError::caused(format!("cannot replace {}", path.display()), e))?;
        let file =
            OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::caused(format!("cannot open {}", path.display()), e))?;
        state.log = Some(Log { file, len, frame: Vec::new(), broken: false });
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
        self.state.lock().map_err(|_| StoreError::other("embedded store lock poisoned"))
    }
}

/// Applies one change; returns the item it replaced or removed, and the item it put.
fn apply(state: &mut State, c: Change) -> (Option<Shared>, Option<Shared>) {
    match c {
        Change::Put(item) => {
            let item = Shared::new(item);
            if let Some((gp, gs)) = &item.gsi1 {
                let key = (item.pk.clone(), item.sk.clone());
                state.gsi1.entry(gp.clone()).or_default().entry(gs.clone()).or_default().insert(key);
            }
            let old = state.items.entry(item.pk.clone()).or_default().insert(item.sk.clone(), item.clone());
            if let Some(old_gsi) = old.as_ref().and_then(|o| o.gsi1.as_ref()).filter(|g| Some(*g) != item.gsi1.as_ref()) {
                unindex(state, old_gsi, &item.pk, &item.sk);
            }
            (old, Some(item))
        }
        Change::Del(pk, sk) => {
            let partition = state.items.get_mut(&pk);
            let old = partition.and_then(|p| p.remove(&sk));
            if state.items.get(&pk).is_some_and(BTreeMap::is_empty) {
                state.items.remove(&pk);
            }
            if let Some(g) = old.as_ref().and_then(|o| o.gsi1.as_ref()) {
                unindex(state, g, &pk, &sk);
            }
            (old, None)
        }
    }
}

fn unindex(state: &mut State, (gp, gs): &Key, pk: &str, sk: &str) {
    let Some(partition) = state.gsi1.get_mut(gp) else { return };
    if let Some(set) = partition.get_mut(gs) {
        set.remove(&(pk.to_string(), sk.to_string()));
        if set.is_empty() {
            partition.remove(gs);
        }
    }
    if partition.is_empty() {
        state.gsi1.remove(gp);
    }
}

/// A log of JSON lines (one transaction per line), as versions before the framed log wrote it.
/// A line that does not parse (a torn last line) is skipped.
fn replay_json_lines(bytes: &[u8], state: &mut State) {
    for (n, line) in bytes.lines().enumerate() {
        let Ok(line) = line else { continue };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Vec<Change>>(&line) {
            Ok(changes) => changes.into_iter().for_each(|c| {
                apply(state, c);
            }),
            Err(_) => tracing::warn!(line = n + 1, "ignoring an incomplete log line"),
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
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError> {
        let now = crate::time::unix_now();
        Ok(self.lock()?.live(pk, sk, now).cloned())
    }

    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError> {
        let now = crate::time::unix_now();
        let s = self.lock()?;
        Ok(keys.iter().map(|(pk, sk)| s.live(pk, sk, now).cloned()).collect())
    }

    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError> {
        let now = crate::time::unix_now();
        let s = self.lock()?;
        if q.lo > q.hi {
            return Ok(Vec::new());
        }
        Ok(match q.index {
            Index::Primary => sort_range(&s.items, &q.pk, &q.lo, &q.hi, q.forward)
                .map(|(_, item)| item)
                .filter(|i| !i.expired(now))
                .take(q.limit)
                .cloned()
                .collect(),
            Index::Gsi1 => sort_range(&s.gsi1, &q.pk, &q.lo, &q.hi, q.forward)
                .flat_map(|(_, keys)| keys.iter())
                .filter_map(|(pk, sk)| s.live(pk, sk, now))
                .take(q.limit)
                .cloned()
                .collect(),
        })
    }

    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        let now = crate::time::unix_now();
        let mut s = self.lock()?;
        let partition = s.items.entry(pk.to_string()).or_default();
        if !partition.contains_key(sk) {
            // counters are made anew each period (a rate limit's second): what has expired goes
            // when the next one is made, as DynamoDB's TTL removes it, so a long-running server
            // does not keep every second it ever counted
            partition.retain(|_, i| !i.expired(now));
        }
        let shared = partition
            .entry(sk.to_string())
            .or_insert_with(|| Shared::new(Item { pk: pk.to_string(), sk: sk.to_string(), ..Default::default() }));
        let item = Shared::make_mut(shared);
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
            return Err(StoreError::other(format!("{} writes exceed one transaction", writes.len())));
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
            let current = s.live(pk, sk, now);
            if !holds(cond, current.map(|i| &**i)) {
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
                        None => s.item(&pk, &sk).map(|i| Item::clone(i)),
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
            log.append(&changes).map_err(|e| StoreError::Unavailable {
                context: "embedded log write failed".into(),
                source: Some(std::sync::Arc::new(e)),
            })?;
        }
        let observer = self.observer.read().ok();
        let observer = observer.as_ref().and_then(|o| o.as_ref());
        for c in changes {
            let (old, new) = apply(&mut s, c);
            if let Some(f) = observer {
                f(old.as_deref().filter(|o| !o.expired(now)), new.as_deref());
            }
        }
        Ok(())
    }
}

/// Restricts a file or directory to its owner (`mode`: 0o700 for directories, 0o600 for files).
pub fn owner_only(path: &Path, mode: u32) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::caused(format!("cannot restrict {} to its owner", path.display()), e))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str, sk: &str, cond: Cond) -> Write {
        Write::Put { item: Item::new(pk, sk, "{}".into(), 1), cond }
    }

    #[tokio::test]
    async fn reads_hand_out_the_item_held_not_a_copy() {
        let t = EmbeddedTable::in_memory();
        t.write(vec![put("p", "a", Cond::Absent)]).await.unwrap();
        let (one, two) = (t.get("p", "a").await.unwrap().unwrap(), t.get("p", "a").await.unwrap().unwrap());
        let many = t.get_many(&[("p".into(), "a".into())]).await.unwrap().remove(0).unwrap();
        let listed = t.query(&Query::prefix("p", "", None, 10)).await.unwrap().remove(0);
        assert!(Shared::ptr_eq(&one, &two) && Shared::ptr_eq(&one, &many) && Shared::ptr_eq(&one, &listed));
        // a write replaces the item; what a reader already holds stays as it was read
        t.write(vec![Write::Put { item: Item::new("p", "a", "{\"x\":1}".into(), 2), cond: Cond::Always }]).await.unwrap();
        assert_eq!((one.version, one.doc.as_deref()), (1, Some("{}")));
        assert!(!Shared::ptr_eq(&one, &t.get("p", "a").await.unwrap().unwrap()));
    }

    #[tokio::test]
    async fn expired_counters_are_dropped_when_the_next_one_is_made() {
        let t = EmbeddedTable::in_memory();
        let now = crate::time::unix_now();
        for second in 0..100 {
            assert_eq!(t.count("RATE", &second.to_string(), 1, now - 1).await.unwrap(), 1);
        }
        assert_eq!(t.count("RATE", "live", 2, now + 120).await.unwrap(), 2);
        assert_eq!(t.count("RATE", "live", 1, now + 120).await.unwrap(), 3, "a live counter keeps counting");
        assert_eq!(t.state.lock().unwrap().items["RATE"].len(), 1, "only the live counter is kept");
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

    #[tokio::test]
    async fn logs_survive_torn_appends_refuse_damage_and_upgrade_from_json_lines() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("table.log");
        // a log as earlier versions wrote it: JSON lines, the last one torn
        let legacy = format!(
            "{}\n{}\n[{{\"Put\":{{\"pk\":\"p\",\"sk\":",
            serde_json::to_string(&[Change::Put(Item::new("p", "a", "{\"x\":\"1\"}".into(), 1))]).unwrap(),
            serde_json::to_string(&[Change::Put(Item::new("p", "b", "{}".into(), 1)), Change::Del("p".into(), "a".into())]).unwrap()
        );
        fs::write(&log, legacy).unwrap();
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            assert!(t.get("p", "a").await.unwrap().is_none() && t.get("p", "b").await.unwrap().is_some());
            t.write(vec![put("p", "c", Cond::Absent)]).await.unwrap();
        }
        assert!(fs::read(&log).unwrap().starts_with(wal::MAGIC), "rewritten in frames");
        // a torn append (half a frame at the end): dropped, the rest kept
        let mut frame = Vec::new();
        wal::encode(&[Change::Put(Item::new("p", "d", "{}".into(), 1))], &mut frame);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&frame[..frame.len() / 2]).unwrap();
        drop(f);
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            assert!(t.get("p", "c").await.unwrap().is_some() && t.get("p", "d").await.unwrap().is_none());
            t.write(vec![put("p", "e", Cond::Absent)]).await.unwrap();
        }
        // damage with a whole frame after it: refused, and the file is left as it was
        let mut bytes = fs::read(&log).unwrap();
        let at = wal::MAGIC.len() + 10;
        bytes[at] ^= 0xff;
        fs::write(&log, &bytes).unwrap();
        let e = EmbeddedTable::open(&dir).err().expect("a damaged log is refused");
        assert!(e.to_string().contains("damaged at byte"), "{e}");
        assert_eq!(fs::read(&log).unwrap(), bytes, "nothing rewritten");
        let _ = fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn the_data_directory_and_log_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("scim-perm-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        drop(EmbeddedTable::open(&dir).unwrap());
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("table.log"))), (0o700, 0o600));
        let _ = fs::remove_dir_all(&dir);
    }
}
