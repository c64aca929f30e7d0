//! The embedded store: the whole table in memory (ordered maps, same key semantics as DynamoDB),
//! made durable by an append-only log under a data directory ([`super::wal`]): every committed
//! transaction is one frame holding the resulting items, appended before the change is applied;
//! startup replays the log and rewrites it compactly. Logs written as JSON lines by earlier
//! versions are read once and rewritten in frames.

use super::durability::{Durability, GroupSync};
use super::wal::{self, Change};
use super::{Cond, Index, Item, Query, Shared, StoreError, Table, Write};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read as _, Write as _};
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
    /// The log's group commit, when writes are acknowledged only once on stable storage.
    durable: Option<std::sync::Arc<GroupSync>>,
    /// Held for the table's life: one process per data directory.
    _lock: Option<File>,
}

impl EmbeddedTable {
    /// A table that lives only in memory (tests, benchmarks of the core).
    pub fn in_memory() -> EmbeddedTable {
        EmbeddedTable {
            state: Mutex::new(State::default()),
            path: None,
            observer: std::sync::RwLock::new(None),
            durable: None,
            _lock: None,
        }
    }

    /// Opens (or creates) the table under `dir`, replaying its log and rewriting it compactly when
    /// more than [`GARBAGE_PERCENT`] % of it is superseded (or it is of an earlier format, or its
    /// last append was torn); otherwise later writes append after it. The directory
    /// and the log are readable by their owner only (they hold key hashes, the cursor seal and
    /// people's data). A log damaged anywhere but its last append is refused and left as it is
    /// ([`survey`] and [`repair`] say what a repair would drop, and do it); whenever a start
    /// drops anything (a torn last append, an older format's incomplete last line), the log as
    /// it was is kept beside the new one first.
    pub fn open(dir: &Path) -> Result<EmbeddedTable, StoreError> {
        EmbeddedTable::open_with(dir, Durability::Sync)
    }

    /// [`EmbeddedTable::open`], acknowledging writes as `durability` says.
    pub fn open_with(dir: &Path, durability: Durability) -> Result<EmbeddedTable, StoreError> {
        let lock = lock_dir(dir)?;
        let path = dir.join(LOG);
        let mut state = State::default();
        let started = std::time::Instant::now();
        let mut rewrite = true;
        if path.exists() {
            let found = read_log(&path, &mut state)?;
            rewrite = found.rewrite;
            tracing::info!(ms = started.elapsed().as_millis() as u64, changes = found.changes, "log replayed");
            if let Some((dropped, kept)) = found.dropped {
                tracing::warn!(
                    what = dropped,
                    kept = %kept.display(),
                    "dropped an incomplete last write (the process stopped mid-write; it was never acknowledged); the log as it was is kept"
                );
            }
        }
        let before = std::time::Instant::now();
        let compacted = if rewrite { Some(compact(dir, &path, &state)?) } else { None };
        let file =
            OpenOptions::new().append(true).open(&path).map_err(|e| StoreError::caused(format!("cannot open {}", path.display()), e))?;
        let len = match compacted {
            Some(len) => {
                tracing::info!(bytes = len, ms = before.elapsed().as_millis() as u64, "log compacted");
                len
            }
            // used as it is: what it holds is made durable before anything is appended after it
            None => {
                file.sync_all().map_err(|e| StoreError::caused(format!("cannot sync {}", path.display()), e))?;
                file.metadata().map_err(|e| StoreError::caused(format!("cannot read {}", path.display()), e))?.len()
            }
        };
        let durable = match durability {
            // the compacted log was synced before it was renamed into place: `len` bytes are durable
            Durability::Sync => {
                let twin = file.try_clone().map_err(|e| StoreError::caused("cannot open the log twice", e))?;
                Some(std::sync::Arc::new(GroupSync::new(twin, len)))
            }
            Durability::Async => None,
        };
        state.log = Some(Log { file, len, frame: Vec::new(), broken: false });
        Ok(EmbeddedTable { state: Mutex::new(state), path: Some(path), observer: std::sync::RwLock::new(None), durable, _lock: Some(lock) })
    }

    /// Sets the change feed (the local stand-in for DynamoDB Streams): called in commit order,
    /// after each transaction, with the old and new image of every changed item.
    pub fn on_change(&self, f: ChangeObserver) {
        if let Ok(mut o) = self.observer.write() {
            *o = Some(f);
        }
    }

    /// How many times the log has been synced to stable storage (group commits run).
    pub fn syncs(&self) -> u64 {
        self.durable.as_ref().map_or(0, |g| g.syncs())
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
        Change::Put(mut item) => {
            // held for the process's life: without the spare capacity a document was built with
            for s in [&mut item.pk, &mut item.sk].into_iter().chain(item.doc.as_mut()) {
                s.shrink_to_fit();
            }
            let item = Shared::new(item);
            if let Some((gp, gs)) = &item.gsi1 {
                let key = (item.pk.clone(), item.sk.clone());
                let partition = match state.gsi1.get_mut(gp) {
                    Some(p) => p,
                    None => state.gsi1.entry(gp.clone()).or_default(),
                };
                partition.entry(gs.clone()).or_default().insert(key);
            }
            // the partition's key is allocated once, not once per item put into it
            let partition = match state.items.get_mut(&item.pk) {
                Some(p) => p,
                None => state.items.entry(item.pk.clone()).or_default(),
            };
            let old = partition.insert(item.sk.clone(), item.clone());
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
/// Only the last line may be incomplete (a torn append: dropped, and said); a line that does not
/// parse with whole lines after it is damage, refused with nothing changed.
fn replay_json_lines(path: &Path, bytes: &[u8], state: &mut State) -> Result<Option<String>, StoreError> {
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty()).collect();
    for (n, line) in lines.iter().enumerate() {
        match serde_json::from_slice::<Vec<Change>>(line) {
            Ok(changes) => changes.into_iter().for_each(|c| {
                apply(state, c);
            }),
            Err(_) if n + 1 == lines.len() => return Ok(Some(format!("an incomplete last line ({} bytes)", line.len()))),
            Err(e) => {
                return Err(StoreError::other(format!(
                    "{} (a log of an earlier version) is damaged at line {} ({e}) with whole lines after it; nothing was changed",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(None)
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
        let end = self.commit(writes)?;
        match (&self.durable, end) {
            // inside a request's deferred scope, the request waits once for all its writes
            (Some(g), Some(end)) if super::durability::owe(g, end) => Ok(()),
            (Some(g), Some(end)) => self.acknowledge(g, end).await,
            _ => Ok(()),
        }
    }
}

impl EmbeddedTable {
    /// Checks, logs and applies one transaction under the table's lock; the log's length after
    /// its frame (`None`: nothing changed, or no log).
    fn commit(&self, writes: Vec<Write>) -> Result<Option<u64>, StoreError> {
        if writes.len() > super::MAX_TRANSACTION {
            return Err(StoreError::other(format!("{} writes exceed one transaction", writes.len())));
        }
        // DynamoDB's item limit, so what one store takes the other does too
        let puts = writes.iter().filter_map(|w| if let Write::Put { item, .. } = w { Some(item) } else { None });
        if let Some(big) = puts.map(Item::size).find(|n| *n > super::MAX_ITEM_BYTES) {
            let what = format!("an item of {big} bytes is larger than the store's {} bytes", super::MAX_ITEM_BYTES);
            return Err(StoreError::TooLarge { what });
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
        // a transaction of checks alone changes nothing: no frame (an empty frame is eight zero
        // bytes, which replay must not take for evidence of anything)
        let mut end = None;
        if self.durable.as_ref().is_some_and(|g| g.failed.load(std::sync::atomic::Ordering::Acquire)) {
            return Err(StoreError::Unavailable {
                context: "an earlier sync of the embedded log failed; restart to recover".into(),
                source: None,
            });
        }
        if let Some(log) = s.log.as_mut().filter(|_| !changes.is_empty()) {
            log.append(&changes).map_err(|e| StoreError::Unavailable {
                context: "embedded log write failed".into(),
                source: Some(std::sync::Arc::new(e)),
            })?;
            end = Some(log.len);
            if let Some(g) = &self.durable {
                g.appended(log.len);
            }
        }
        let observer = self.observer.read().ok();
        let observer = observer.as_ref().and_then(|o| o.as_ref());
        for c in changes {
            let (old, new) = apply(&mut s, c);
            if let Some(f) = observer {
                f(old.as_deref().filter(|o| !o.expired(now)), new.as_deref());
            }
        }
        Ok(end)
    }

    /// Waits until the log's first `end` bytes are on stable storage. A failed sync leaves it
    /// unknown what the disk holds: the log takes no more writes until a restart reads it again.
    async fn acknowledge(&self, g: &GroupSync, end: u64) -> Result<(), StoreError> {
        let Err(e) = g.wait(end).await else { return Ok(()) };
        tracing::error!(error = %e, "the embedded log could not be synced to disk; no more writes until a restart");
        Err(StoreError::Unavailable { context: "embedded log sync failed".into(), source: Some(std::sync::Arc::new(e)) })
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

/// The log's file name under the data directory.
const LOG: &str = "table.log";

/// Creates `dir` (owner only) and takes its lock: one process per data directory.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
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
    Ok(lock)
}

/// What reading the log found: what a start dropped (a torn last append) and where the log as
/// it was is kept, and whether the log must be rewritten (an earlier format, a dropped tail, or
/// more than [`GARBAGE_PERCENT`] of its changes superseded).
struct Read {
    dropped: Option<(String, PathBuf)>,
    rewrite: bool,
    changes: usize,
}

/// Superseded changes (overwritten, deleted) in the log, in percent of the live items, above
/// which a start rewrites it compactly. Below it the log is used as it is: a start reads it and
/// appends after it, without writing it all again.
const GARBAGE_PERCENT: usize = 25;

/// Replays the log at `path` into `state`. When it drops something (an incomplete last write),
/// it first keeps the log as it was and says what it dropped and where the original is; an
/// earlier version's log is always kept before it is rewritten. Damage anywhere else is an
/// error, with nothing of the file changed.
fn read_log(path: &Path, state: &mut State) -> Result<Read, StoreError> {
    let unreadable = |e| StoreError::caused(format!("cannot read {}", path.display()), e);
    let mut file = File::open(path).map_err(unreadable)?;
    let mut head = Vec::new();
    std::io::Read::by_ref(&mut file).take(wal::MAGIC.len() as u64).read_to_end(&mut head).map_err(unreadable)?;
    if head != wal::MAGIC {
        let bytes = fs::read(path).map_err(unreadable)?;
        let dropped = replay_json_lines(path, &bytes, state)?;
        let kept = keep_original(path, "v1")?;
        tracing::info!(kept = %kept.display(), "a log of an earlier version was read; it is rewritten in frames and the original kept");
        return Ok(Read { dropped: dropped.map(|d| (d, kept)), rewrite: true, changes: 0 });
    }
    let (replayed, changes) = replay_pipelined(file, state);
    let replayed = replayed.map_err(unreadable)?.map_err(|d| {
        StoreError::other(format!(
            "{} is damaged at byte {} (not an interrupted last write: whole writes follow it); nothing was changed. \
             `scim-admin --data-dir {} repair` shows what a repair would drop, and `repair --yes` does it, keeping the original",
            path.display(),
            d.offset + wal::MAGIC.len(),
            path.parent().unwrap_or(Path::new(".")).display(),
        ))
    })?;
    // what has expired (activity entries after their days, checkpoints, counters) is not
    // loaded, and counts as superseded: a log that keeps it long enough gets rewritten without it
    drop_expired(state, crate::time::unix_now());
    if replayed.torn == 0 {
        let live: usize = state.items.values().map(BTreeMap::len).sum();
        return Ok(Read { dropped: None, rewrite: changes.saturating_sub(live) * 100 > live * GARBAGE_PERCENT, changes });
    }
    let dropped = Some((format!("{} bytes of the last frame", replayed.torn), keep_original(path, "torn")?));
    Ok(Read { dropped, rewrite: true, changes })
}

/// Removes every expired item (and its index entry) from the state.
fn drop_expired(state: &mut State, now: i64) {
    let mut gone = Vec::new();
    for partition in state.items.values_mut() {
        partition.retain(|_, i| {
            let keep = !i.expired(now);
            if !keep && let Some(g) = &i.gsi1 {
                gone.push((g.clone(), i.pk.clone(), i.sk.clone()));
            }
            keep
        });
    }
    state.items.retain(|_, p| !p.is_empty());
    for (g, pk, sk) in gone {
        unindex(state, &g, &pk, &sk);
    }
}

/// [`wal::replay_from`] of `file` with the reading and decoding on a thread of its own and the
/// applying on this one, in batches, in order (a start reads and indexes a million users in
/// about half the time, and never holds the whole log in memory); the result, and how many
/// changes were applied.
fn replay_pipelined(file: File, state: &mut State) -> (std::io::Result<Result<wal::Replayed, wal::Damaged>>, usize) {
    const BATCH: usize = 4096;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Change>>(16);
    std::thread::scope(|s| {
        let decoder = s.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let result = wal::replay_from(file, |c| {
                batch.push(c);
                if batch.len() == BATCH {
                    // the receiver lives until this thread ends
                    let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                }
            });
            let _ = tx.send(batch);
            result
        });
        let mut changes = 0;
        for batch in rx {
            changes += batch.len();
            for c in batch {
                apply(state, c);
            }
        }
        let result = decoder.join().unwrap_or_else(|_| Err(std::io::Error::other("the log's reader stopped")));
        (result, changes)
    })
}

/// Keeps the log as it is now beside itself (`table.log.<why>-<unix seconds>`, a hard link, so
/// even a large log costs no copy) before a start or a repair replaces it.
fn keep_original(path: &Path, why: &str) -> Result<PathBuf, StoreError> {
    let mut kept = path.with_extension(format!("log.{why}-{}", crate::time::unix_now()));
    for n in 1.. {
        if !kept.exists() {
            break;
        }
        kept = path.with_extension(format!("log.{why}-{}-{n}", crate::time::unix_now()));
    }
    fs::hard_link(path, &kept)
        .or_else(|_| fs::copy(path, &kept).map(|_| ()))
        .map_err(|e| StoreError::caused(format!("cannot keep a copy of {} as {}", path.display(), kept.display()), e))?;
    Ok(kept)
}

/// Rewrites the log as one frame per live item (a new file, synced, then renamed over the old
/// one); returns its length, where appends go on.
fn compact(dir: &Path, path: &Path, state: &State) -> Result<u64, StoreError> {
    let tmp = dir.join("table.log.tmp");
    let failed = |what: &str, e: std::io::Error| StoreError::caused(format!("cannot {what} {}", tmp.display()), e);
    let f = File::create(&tmp).map_err(|e| failed("write", e))?;
    owner_only(&tmp, 0o600)?;
    let mut w = BufWriter::new(f);
    let now = crate::time::unix_now();
    let mut frame = Vec::new();
    let mut len = wal::MAGIC.len() as u64;
    w.write_all(wal::MAGIC).map_err(|e| failed("write", e))?;
    for item in state.items.values().flat_map(BTreeMap::values).filter(|i| !i.expired(now)) {
        frame.clear();
        wal::encode_put(item, &mut frame);
        w.write_all(&frame).map_err(|e| failed("write", e))?;
        len += frame.len() as u64;
    }
    w.flush().map_err(|e| failed("write", e))?;
    w.get_ref().sync_all().map_err(|e| failed("sync", e))?;
    fs::rename(&tmp, path).map_err(|e| StoreError::caused(format!("cannot replace {}", path.display()), e))?;
    Ok(len)
}

/// What a repair of the log under `dir` would keep and drop.
#[derive(Debug)]
pub struct Survey {
    /// The log file surveyed (`table.log` under the directory).
    pub path: PathBuf,
    /// The log's stretches in order (byte offsets count from the start of the file).
    pub stretches: Vec<wal::Stretch>,
    changes: Vec<Change>,
}

impl Survey {
    /// Whether the log reads whole (nothing to repair).
    pub fn is_whole(&self) -> bool {
        self.stretches.iter().all(|s| matches!(s, wal::Stretch::Frame { .. }))
    }

    /// Bytes a repair drops.
    pub fn dropped_bytes(&self) -> usize {
        self.stretches
            .iter()
            .map(|s| if let wal::Stretch::Damaged { len, .. } | wal::Stretch::Torn { len, .. } = s { *len } else { 0 })
            .sum()
    }
}

/// Reads the log under `dir` as a repair would, changing nothing (the directory's lock is held
/// while reading, so no server writes meanwhile).
pub fn survey(dir: &Path) -> Result<Survey, StoreError> {
    let _lock = lock_dir(dir)?;
    survey_locked(dir)
}

fn survey_locked(dir: &Path) -> Result<Survey, StoreError> {
    let path = dir.join(LOG);
    let bytes = fs::read(&path).map_err(|e| StoreError::caused(format!("cannot read {}", path.display()), e))?;
    let frames = bytes.strip_prefix(wal::MAGIC).ok_or_else(|| {
        StoreError::other(format!("{} is not a framed log (an older format is upgraded by starting scim-local)", path.display()))
    })?;
    let (mut stretches, changes) = wal::survey(frames);
    let at = wal::MAGIC.len();
    for s in &mut stretches {
        let (wal::Stretch::Frame { offset, .. }
        | wal::Stretch::Recovered { offset, .. }
        | wal::Stretch::Damaged { offset, .. }
        | wal::Stretch::Torn { offset, .. }) = s;
        *offset += at;
    }
    Ok(Survey { path, stretches, changes })
}

/// Repairs the log under `dir` as [`survey`] described it: keeps every whole and recovered
/// frame, drops the rest, and keeps the log as it was as `table.log.damaged-<unix seconds>`.
/// Returns that path. Refuses when the log changed since the survey.
pub fn repair(dir: &Path, seen: &Survey) -> Result<PathBuf, StoreError> {
    let _lock = lock_dir(dir)?;
    let now = survey_locked(dir)?;
    if now.stretches != seen.stretches {
        return Err(StoreError::other(format!("{} changed since it was surveyed; survey it again", now.path.display())));
    }
    let mut state = State::default();
    for c in now.changes {
        apply(&mut state, c);
    }
    let kept = keep_original(&now.path, "damaged")?;
    compact(dir, &now.path, &state)?;
    Ok(kept)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_rewrites_the_log_only_when_much_of_it_is_superseded() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        let log = dir.join(LOG);
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            for i in 0..20 {
                t.write(vec![put("p", &format!("k{i}"), Cond::Absent)]).await.unwrap();
            }
        }
        let written = fs::read(&log).unwrap();
        {
            // 20 changes, 20 live items: used as it is, and appended after
            let t = EmbeddedTable::open(&dir).unwrap();
            assert_eq!(fs::read(&log).unwrap(), written, "a compact log is not rewritten");
            for _ in 0..10 {
                t.write(vec![put("p", "k0", Cond::Always)]).await.unwrap();
            }
        }
        let appended = fs::metadata(&log).unwrap().len();
        assert!(appended > written.len() as u64);
        // 30 changes for 20 items (50 % superseded): rewritten, to one put per item
        let t = EmbeddedTable::open(&dir).unwrap();
        let rewritten = fs::metadata(&log).unwrap().len();
        assert_eq!(rewritten, written.len() as u64, "rewritten compactly");
        assert_eq!(t.query(&Query::prefix("p", "", None, 100)).await.unwrap().len(), 20, "nothing lost either way");
        drop(t);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_loads_nothing_expired_and_rewrites_a_log_mostly_expired() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        fs::create_dir_all(&dir).unwrap();
        let mut log = wal::MAGIC.to_vec();
        for i in 0..40 {
            let mut item = Item::new("p", format!("k{i:02}"), "{}".into(), 1);
            item.gsi1 = Some(("g".into(), format!("k{i:02}")));
            // the first 30 expired long ago (activity entries past their days)
            item.expires_at = Some(if i < 30 { 1 } else { crate::time::unix_now() + 3600 });
            wal::encode(&[Change::Put(item)], &mut log);
        }
        fs::write(dir.join(LOG), &log).unwrap();
        let t = EmbeddedTable::open(&dir).unwrap();
        assert_eq!(t.state.lock().unwrap().items["p"].len(), 10, "nothing expired is loaded");
        let by_index = Query {
            index: Index::Gsi1,
            pk: "g".into(),
            lo: "k".into(),
            hi: "k\u{10FFFF}".into(),
            forward: true,
            limit: 100,
            keys_only: false,
        };
        assert_eq!(t.query(&by_index).await.unwrap().len(), 10, "nor indexed");
        assert!(fs::metadata(dir.join(LOG)).unwrap().len() < log.len() as u64 / 2, "30 of 40 expired: rewritten without them");
        drop(t);
        let _ = fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_once_synced_and_concurrent_writes_share_syncs() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        let t = std::sync::Arc::new(EmbeddedTable::open(&dir).unwrap());
        assert_eq!(t.syncs(), 0, "the compacted log was synced when it was written");
        t.write(vec![put("p", "first", Cond::Absent)]).await.unwrap();
        assert_eq!(t.syncs(), 1, "answered after its own sync");
        t.write(vec![Write::Check { pk: "p".into(), sk: "first".into(), cond: Cond::Exists }]).await.unwrap();
        assert_eq!(t.syncs(), 1, "a transaction that changes nothing writes and syncs nothing");
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let t = t.clone();
                tokio::spawn(async move { t.write(vec![put("p", &format!("w{i}"), Cond::Absent)]).await })
            })
            .collect();
        for w in writers {
            w.await.unwrap().unwrap();
        }
        let shared = t.syncs() - 1;
        assert!((1..=64).contains(&shared), "64 writes, {shared} syncs");
        // a request's writes (its resource, then its audit entry) wait once, at its end
        let before = t.syncs();
        let (wrote, synced) = super::super::durability::deferred(async {
            t.write(vec![put("p", "r1", Cond::Absent)]).await.unwrap();
            t.write(vec![put("p", "r2", Cond::Absent)]).await.unwrap();
            t.syncs()
        })
        .await;
        synced.unwrap();
        assert_eq!((wrote, t.syncs()), (before, before + 1), "no sync while the request ran, one after it");
        drop(t);
        let _ = fs::remove_dir_all(&dir);
        let t = EmbeddedTable::open_with(&dir, Durability::Async).unwrap();
        t.write(vec![put("p", "a", Cond::Absent)]).await.unwrap();
        assert_eq!(t.syncs(), 0, "async: answered once written, never synced per write");
        drop(t);
        assert!(EmbeddedTable::open(&dir).unwrap().get("p", "a").await.unwrap().is_some(), "and still in the log");
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
        let torn = fs::read(&log).unwrap();
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            assert!(t.get("p", "c").await.unwrap().is_some() && t.get("p", "d").await.unwrap().is_none());
            t.write(vec![put("p", "e", Cond::Absent)]).await.unwrap();
        }
        // what a start dropped is kept: the log as it was, and the earlier version's log
        let kept = |why: &str| -> Vec<Vec<u8>> {
            let mut found: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
            found.retain(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("table.log.{why}-")));
            found.iter().map(|p| fs::read(p).unwrap()).collect()
        };
        assert_eq!(kept("torn"), [torn], "the torn log is kept as it was");
        assert!(kept("v1")[0].starts_with(b"[{"), "the earlier version's log is kept");
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

    /// The probe's case: one flipped bit in the length of a frame in the middle of the log. The
    /// start used to take the rest for a torn tail and compact half the store away.
    #[tokio::test]
    async fn a_damaged_length_mid_log_stops_the_start_and_a_repair_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("scim-embedded-{}", uuid::Uuid::new_v4()));
        {
            let t = EmbeddedTable::open(&dir).unwrap();
            for n in 0..200 {
                t.write(vec![put("p", &format!("u{n:03}"), Cond::Absent)]).await.unwrap();
            }
        }
        let log = dir.join(LOG);
        let mut bytes = fs::read(&log).unwrap();
        let frame = (bytes.len() - wal::MAGIC.len()) / 200;
        let middle = wal::MAGIC.len() + 100 * frame;
        bytes[middle + 2] ^= 0x01; // the length's third byte: it now runs past the end of the file
        fs::write(&log, &bytes).unwrap();
        let e = EmbeddedTable::open(&dir).err().expect("refused");
        assert!(e.to_string().contains(&format!("damaged at byte {middle}")) && e.to_string().contains("repair"), "{e}");
        assert_eq!(fs::read(&log).unwrap(), bytes, "nothing rewritten");
        let s = survey(&dir).unwrap();
        assert!(
            !s.is_whole() && s.dropped_bytes() == 0,
            "{:?}",
            s.stretches.iter().filter(|s| !matches!(s, wal::Stretch::Frame { .. })).collect::<Vec<_>>()
        );
        let kept = repair(&dir, &s).unwrap();
        assert_eq!(fs::read(&kept).unwrap(), bytes, "the damaged log is kept as it was");
        let t = EmbeddedTable::open(&dir).unwrap();
        assert_eq!(t.query(&Query::prefix("p", "u", None, 1000)).await.unwrap().len(), 200, "every item is back");
        drop(t);
        // a damaged payload: that one write is dropped (and said), every other kept
        let mut bytes = fs::read(&log).unwrap();
        bytes[middle + 20] ^= 0x01;
        fs::write(&log, &bytes).unwrap();
        assert!(EmbeddedTable::open(&dir).is_err());
        let s = survey(&dir).unwrap();
        assert!(s.dropped_bytes() > 0 && s.dropped_bytes() < 2 * frame, "{}", s.dropped_bytes());
        fs::write(&log, [&bytes[..], b"x"].concat()).unwrap();
        assert!(repair(&dir, &s).is_err(), "a log that changed since its survey is not repaired");
        fs::write(&log, &bytes).unwrap();
        repair(&dir, &survey(&dir).unwrap()).unwrap();
        let t = EmbeddedTable::open(&dir).unwrap();
        assert_eq!(t.query(&Query::prefix("p", "u", None, 1000)).await.unwrap().len(), 199);
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
