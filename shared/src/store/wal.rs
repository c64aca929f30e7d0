//! The embedded store's log: one frame per committed transaction, appended before the change is
//! applied in memory. A frame is `payload length (u32 LE) · CRC-32 of the payload (u32 LE) ·
//! payload`; the payload lists the transaction's changes with length-prefixed fields, so a
//! document is copied as it is (a JSON log escaped every quote of every document). Replay
//! stops cleanly at a torn last frame (a crash mid-append) and refuses a file damaged anywhere
//! else, naming the byte where the damage starts.

use super::Item;
use std::collections::BTreeMap;
use std::io::Read;

/// The first bytes of a framed log (older logs are JSON lines and start with `[`).
pub const MAGIC: &[u8] = b"SCIMLOG2\n";

/// One logged change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// The item was stored, replacing any item under its keys.
    Put(Item),
    /// The item under these keys (partition, sort) was removed.
    Del(String, String),
}

const PUT: u8 = 1;
const DEL: u8 = 2;
const HAS_GSI: u8 = 1;
const HAS_DOC: u8 = 2;
const HAS_TTL: u8 = 4;
const HEADER: usize = 8;

fn put_str(out: &mut Vec<u8>, s: &str) {
    // items are far below 4 GiB (DynamoDB's limit is 400 KB)
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Appends one frame holding `changes` to `out`.
pub fn encode(changes: &[Change], out: &mut Vec<u8>) {
    frame(out, |out| {
        for c in changes {
            match c {
                Change::Put(i) => put(out, i),
                Change::Del(pk, sk) => {
                    out.push(DEL);
                    put_str(out, pk);
                    put_str(out, sk);
                }
            }
        }
    });
}

/// Appends one frame putting `item` (what compaction writes for each live item).
pub fn encode_put(item: &Item, out: &mut Vec<u8>) {
    frame(out, |out| put(out, item));
}

/// Appends the header, the payload `body` writes, then fills in the length and checksum.
fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    body(out);
    let len = (out.len() - start - HEADER) as u32;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn put(out: &mut Vec<u8>, i: &Item) {
    out.push(PUT);
    put_str(out, &i.pk);
    put_str(out, &i.sk);
    let flags = if i.gsi1.is_some() { HAS_GSI } else { 0 }
        | if i.doc.is_some() { HAS_DOC } else { 0 }
        | if i.expires_at.is_some() { HAS_TTL } else { 0 };
    out.push(flags);
    if let Some((p, s)) = &i.gsi1 {
        put_str(out, p);
        put_str(out, s);
    }
    if let Some(d) = &i.doc {
        put_str(out, d);
    }
    out.extend_from_slice(&i.version.to_le_bytes());
    if let Some(t) = i.expires_at {
        out.extend_from_slice(&t.to_le_bytes());
    }
    out.extend_from_slice(&(i.nums.len() as u32).to_le_bytes());
    for (k, v) in &i.nums {
        put_str(out, k);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.b.split_at_checked(n)?;
        self.b = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(i64::from_le_bytes)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        self.take(n).and_then(|b| String::from_utf8(b.to_vec()).ok())
    }
    fn change(&mut self) -> Option<Change> {
        match self.u8()? {
            PUT => {
                let (pk, sk) = (self.str()?, self.str()?);
                let flags = self.u8()?;
                let gsi1 = if flags & HAS_GSI != 0 { Some((self.str()?, self.str()?)) } else { None };
                let doc = if flags & HAS_DOC != 0 { Some(self.str()?) } else { None };
                let version = self.u64()?;
                let expires_at = if flags & HAS_TTL != 0 { Some(self.i64()?) } else { None };
                let mut nums = BTreeMap::new();
                for _ in 0..self.u32()? {
                    let k = self.str()?;
                    nums.insert(k, self.i64()?);
                }
                Some(Change::Put(Item { pk, sk, gsi1, doc, version, nums, expires_at }))
            }
            DEL => Some(Change::Del(self.str()?, self.str()?)),
            _ => None,
        }
    }
}

/// What replay found after the last whole frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Bytes of whole frames (where the next append goes).
    pub valid: usize,
    /// Bytes of a torn last frame, dropped.
    pub torn: usize,
}

/// A frame that cannot be read with a whole frame somewhere after it: the file is damaged, not
/// torn (a crash tears only the last append).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("damaged frame at byte {offset}")]
pub struct Damaged {
    /// Where the unreadable frame starts, bytes into the log after [`MAGIC`].
    pub offset: usize,
}

/// The frame starting at `at`: `Some(Ok((payload, changes)))` when it is whole, its checksum
/// holds and its payload decodes; `Some(Err(()))` when it is there but wrong; `None` when the
/// log ends inside it (a header or payload cut short).
fn frame_at(log: &[u8], at: usize) -> Option<Result<(usize, Vec<Change>), ()>> {
    let rest = log.get(at..)?;
    let header = rest.get(..HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = rest.get(HEADER..HEADER.checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return Some(Err(()));
    }
    Some(decode(payload).map(|changes| (len, changes)).ok_or(()))
}

/// Every change of a payload, or `None` when it does not decode to whole changes.
fn decode(payload: &[u8]) -> Option<Vec<Change>> {
    let mut r = Reader { b: payload };
    let mut changes = Vec::new();
    while !r.b.is_empty() {
        changes.push(r.change()?);
    }
    Some(changes)
}

/// The first position after `from` where a whole, non-empty frame starts (one whose checksum
/// holds and whose payload decodes): evidence that what is at `from` is damage, not a torn
/// tail. Empty frames are not evidence: eight zero bytes are one, and a file extended by a
/// crash may end in zeros.
pub fn resync(log: &[u8], from: usize) -> Option<usize> {
    (from + 1..log.len().saturating_sub(HEADER)).find(|&p| {
        let len = u32::from_le_bytes([log[p], log[p + 1], log[p + 2], log[p + 3]]) as usize;
        len > 0 && len <= log.len() - p - HEADER && matches!(frame_at(log, p), Some(Ok(_)))
    })
}

/// Calls `apply` with every change of every whole frame of `log` (the bytes after [`MAGIC`]),
/// in order. What cannot be read is a torn append only when no whole frame follows it anywhere
/// (a crash cuts the last append short or leaves it unwritten); then it is dropped and
/// reported as `torn`. Anything else is damage: an error, and nothing applied after it.
pub fn replay(log: &[u8], mut apply: impl FnMut(Change)) -> Result<Replayed, Damaged> {
    let mut at = 0;
    while at < log.len() {
        match frame_at(log, at) {
            Some(Ok((len, changes))) => {
                changes.into_iter().for_each(&mut apply);
                at += HEADER + len;
            }
            _ if resync(log, at).is_some() => return Err(Damaged { offset: at }),
            _ => break,
        }
    }
    Ok(Replayed { valid: at, torn: log.len() - at })
}

/// How much of the log [`replay_from`] reads at a time.
const CHUNK: u64 = 8 << 20;

/// [`replay`] of a log read from `r` (the bytes after [`MAGIC`]), holding a window of a few MiB
/// in memory instead of the whole log. Frames are read one after another; at the first one
/// that is not whole the rest of the log is read and [`replay`] decides, on exactly the bytes
/// it would have seen, whether that is a torn last append or damage. The outcome is the same
/// as [`replay`] on the whole log.
pub fn replay_from(r: impl Read, apply: impl FnMut(Change)) -> std::io::Result<Result<Replayed, Damaged>> {
    replay_window(r, CHUNK, apply)
}

/// [`replay_from`] reading `chunk` bytes at a time.
fn replay_window(mut r: impl Read, chunk: u64, mut apply: impl FnMut(Change)) -> std::io::Result<Result<Replayed, Damaged>> {
    let (mut buf, mut base, mut start, mut eof) = (Vec::new(), 0usize, 0usize, false);
    loop {
        let have = buf.len() - start;
        let need =
            buf.get(start..start + HEADER).map_or(HEADER, |h| HEADER.saturating_add(u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize));
        if have < need && !eof {
            eof = r.by_ref().take(chunk.max((need - have) as u64)).read_to_end(&mut buf)? == 0;
            continue;
        }
        if have == 0 {
            return Ok(Ok(Replayed { valid: base + start, torn: 0 }));
        }
        match frame_at(&buf, start) {
            Some(Ok((len, changes))) => {
                changes.into_iter().for_each(&mut apply);
                start += HEADER + len;
            }
            _ => {
                r.read_to_end(&mut buf)?;
                let at = base + start;
                return Ok(match replay(&buf[start..], apply) {
                    Ok(done) => Ok(Replayed { valid: at + done.valid, torn: done.torn }),
                    Err(d) => Err(Damaged { offset: at + d.offset }),
                });
            }
        }
        if start as u64 >= chunk {
            buf.drain(..start);
            base += start;
            start = 0;
        }
    }
}

/// One stretch of a damaged log as a repair reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stretch {
    /// A whole frame, kept.
    Frame {
        /// Where the frame starts, in bytes (from after [`MAGIC`], as [`survey`] returns it).
        offset: usize,
        /// The frame's length in bytes, header included.
        len: usize,
        /// How many changes the frame holds.
        changes: usize,
    },
    /// A frame whose length field was damaged but whose payload still matches its checksum
    /// up to the next whole frame: kept, with its length written anew.
    Recovered {
        /// Where the frame starts, in bytes (from after [`MAGIC`], as [`survey`] returns it).
        offset: usize,
        /// Bytes from its start to the next whole frame, header included.
        len: usize,
        /// How many changes its payload holds.
        changes: usize,
    },
    /// Bytes that are no frame, with a whole frame after them: dropped.
    Damaged {
        /// Where the damaged bytes start (from after [`MAGIC`], as [`survey`] returns it).
        offset: usize,
        /// How many bytes are dropped, up to the next whole frame.
        len: usize,
    },
    /// Bytes at the end that are no whole frame (a torn append): dropped.
    Torn {
        /// Where the torn bytes start (from after [`MAGIC`], as [`survey`] returns it).
        offset: usize,
        /// How many bytes are dropped, to the end of the log.
        len: usize,
    },
}

/// What a repair of `log` (the bytes after [`MAGIC`]) keeps and drops, in order, with every
/// change it keeps. Nothing is guessed: a stretch is kept only when its checksum holds.
pub fn survey(log: &[u8]) -> (Vec<Stretch>, Vec<Change>) {
    let (mut stretches, mut kept) = (Vec::new(), Vec::new());
    let mut at = 0;
    while at < log.len() {
        if let Some(Ok((len, changes))) = frame_at(log, at) {
            stretches.push(Stretch::Frame { offset: at, len: HEADER + len, changes: changes.len() });
            kept.extend(changes);
            at += HEADER + len;
            continue;
        }
        let Some(next) = resync(log, at) else {
            stretches.push(Stretch::Torn { offset: at, len: log.len() - at });
            break;
        };
        // the length field alone damaged: the payload up to the next frame still checks out
        let crc = log.get(at + 4..at + HEADER).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let payload = log.get(at + HEADER..next).unwrap_or_default();
        match (crc == Some(crc32fast::hash(payload)) && next >= at + HEADER).then(|| decode(payload)).flatten() {
            Some(changes) => {
                stretches.push(Stretch::Recovered { offset: at, len: next - at, changes: changes.len() });
                kept.extend(changes);
            }
            None => stretches.push(Stretch::Damaged { offset: at, len: next - at }),
        }
        at = next;
    }
    (stretches, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u64) -> Item {
        let mut i = Item::new("TENANT#t", format!("USER#{n}"), format!("{{\"id\":\"{n}\",\"note\":\"quote \\\" and ü\"}}"), n);
        if n.is_multiple_of(2) {
            i.gsi1 = Some(("G".into(), format!("g{n}")));
            i.expires_at = Some(1_700_000_000 + n as i64);
            i.nums.insert("count".into(), -(n as i64));
        }
        i
    }

    fn log_of(frames: &[Vec<Change>]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            encode(f, &mut out);
        }
        out
    }

    #[test]
    fn frames_round_trip() {
        let frames = vec![vec![Change::Put(item(1)), Change::Put(item(2))], vec![Change::Del("TENANT#t".into(), "USER#1".into())], vec![]];
        let log = log_of(&frames);
        let mut seen = Vec::new();
        assert_eq!(replay(&log, |c| seen.push(c)), Ok(Replayed { valid: log.len(), torn: 0 }));
        assert_eq!(seen, frames.concat());
    }

    #[test]
    fn a_torn_tail_is_dropped_and_damage_before_it_is_refused() {
        let log = log_of(&[vec![Change::Put(item(1))], vec![Change::Put(item(2))]]);
        let first = log_of(&[vec![Change::Put(item(1))]]).len();
        // every cut inside the second frame: the first frame survives, the rest is torn
        for cut in first..log.len() {
            let mut seen = Vec::new();
            assert_eq!(replay(&log[..cut], |c| seen.push(c)), Ok(Replayed { valid: first, torn: cut - first }), "cut at {cut}");
            assert_eq!(seen, vec![Change::Put(item(1))]);
        }
        // a flipped byte in the last frame: torn (its append never completed)
        let mut bad = log.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x40;
        assert_eq!(replay(&bad, |_| {}), Ok(Replayed { valid: first, torn: n - first }));
        // the same in the first frame, with a whole frame after it: damaged, nothing guessed
        let mut bad = log.clone();
        bad[first - 3] ^= 0x40;
        assert_eq!(replay(&bad, |_| {}), Err(Damaged { offset: 0 }));
    }

    /// The probe's case: one bit of a length field in the middle of the log made replay take
    /// everything after it for a torn tail (and the start dropped half the store). Every bit of
    /// every frame but the last is damage; every bit of the last is a torn append.
    #[test]
    fn any_flipped_bit_before_the_last_frame_is_damage_never_a_torn_tail() {
        let frames: Vec<Vec<Change>> = (1..=4).map(|n| vec![Change::Put(item(n))]).collect();
        let log = log_of(&frames);
        let last = log_of(&frames[..3]).len();
        for at in 0..log.len() {
            for bit in 0..8 {
                let mut bad = log.clone();
                bad[at] ^= 1 << bit;
                let got = replay(&bad, |_| {});
                if at < last {
                    assert!(got.is_err(), "byte {at} bit {bit}: {got:?}");
                } else {
                    assert_eq!(got, Ok(Replayed { valid: last, torn: log.len() - last }), "byte {at} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn a_survey_recovers_a_damaged_length_and_drops_only_a_damaged_payload() {
        let frames: Vec<Vec<Change>> = (1..=4).map(|n| vec![Change::Put(item(n)), Change::Put(item(n + 10))]).collect();
        let log = log_of(&frames);
        let (second, third) = (log_of(&frames[..1]).len(), log_of(&frames[..2]).len());
        let (whole, kept) = survey(&log);
        assert_eq!(kept, frames.concat());
        assert!(whole.iter().all(|s| matches!(s, Stretch::Frame { changes: 2, .. })));
        // a length field damaged: the frame's payload still checks out, so nothing is lost
        let mut bad = log.clone();
        bad[second + 1] ^= 0x10;
        let (stretches, kept) = survey(&bad);
        assert_eq!(kept, frames.concat());
        assert_eq!(stretches[1], Stretch::Recovered { offset: second, len: third - second, changes: 2 });
        // a payload damaged: that frame is dropped, every frame after it kept
        let mut bad = log.clone();
        bad[second + HEADER + 5] ^= 0x10;
        let (stretches, kept) = survey(&bad);
        assert_eq!(stretches[1], Stretch::Damaged { offset: second, len: third - second });
        assert_eq!(kept, [&frames[0][..], &frames[2][..], &frames[3][..]].concat());
        // a torn tail is the one thing a survey drops at the end
        let (stretches, _) = survey(&log[..log.len() - 3]);
        assert!(matches!(stretches.last(), Some(Stretch::Torn { .. })));
    }

    /// The log read through a window of `chunk` bytes replays exactly as the whole log does.
    fn same_as_whole(log: &[u8]) {
        let whole = {
            let mut got = Vec::new();
            (replay(log, |c| got.push(c)), got)
        };
        for chunk in [1, 7, 64, 1 << 20] {
            let mut got = Vec::new();
            let result = replay_window(std::io::Cursor::new(log), chunk, |c| got.push(c)).unwrap();
            assert_eq!((result, got), whole, "read {chunk} bytes at a time");
        }
    }

    #[test]
    fn a_log_read_a_window_at_a_time_replays_as_the_whole_log() {
        let mut log = Vec::new();
        for n in 0..40 {
            encode(&[Change::Put(item(n)), Change::Del("TENANT#t".into(), format!("USER#{n}"))], &mut log);
        }
        same_as_whole(&log);
        same_as_whole(&[]);
        // a torn tail, then damage at every byte of a frame in the middle and of the last one
        same_as_whole(&log[..log.len() - 5]);
        let middle = log.len() / 2;
        for at in (middle..middle + 40).chain(log.len() - 30..log.len()) {
            let mut bad = log.clone();
            bad[at] ^= 0x40;
            same_as_whole(&bad);
        }
        // a length field claiming far more than the log holds
        let mut huge = log.clone();
        huge[middle..middle + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        same_as_whole(&huge);
    }

    #[test]
    fn zeros_after_the_last_frame_are_not_evidence_of_damage() {
        // a file a crash extended without writing its data reads as zeros: eight of them are an
        // empty frame, which proves nothing about what came before
        let mut log = log_of(&[vec![Change::Put(item(1))]]);
        let first = log.len();
        log.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 2, 3, 4]);
        log.extend_from_slice(&[0; 64]);
        assert_eq!(replay(&log, |_| {}), Ok(Replayed { valid: first, torn: log.len() - first }));
    }
}
