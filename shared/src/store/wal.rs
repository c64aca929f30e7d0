//! The embedded store's log: one frame per committed transaction, appended before the change is
//! applied in memory. A frame is `payload length (u32 LE) · CRC-32 of the payload (u32 LE) ·
//! payload`; the payload lists the transaction's changes with length-prefixed fields, so a
//! document is copied as it is (a JSON log escaped every quote of every document). Replay
//! stops cleanly at a torn last frame (a crash mid-append) and refuses a file damaged anywhere
//! else, naming the byte where the damage starts.

use super::Item;
use std::collections::BTreeMap;

/// The first bytes of a framed log (older logs are JSON lines and start with `[`).
pub const MAGIC: &[u8] = b"SCIMLOG2\n";

/// One logged change.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    Put(Item),
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

/// A frame that is whole but wrong, with more log after it: the file is damaged, not torn.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("damaged frame at byte {offset}")]
pub struct Damaged {
    pub offset: usize,
}

/// Calls `apply` with every change of every whole frame of `log` (the bytes after [`MAGIC`]),
/// in order. A frame cut short by the end of the file, or a last frame whose checksum fails, is
/// a torn append and is dropped; a bad frame with more bytes after it is an error.
pub fn replay(log: &[u8], mut apply: impl FnMut(Change)) -> Result<Replayed, Damaged> {
    let mut at = 0;
    while at < log.len() {
        let rest = &log[at..];
        let Some(header) = rest.get(..HEADER) else { break };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(payload) = rest.get(HEADER..HEADER + len) else { break };
        let last = HEADER + len == rest.len();
        if crc32fast::hash(payload) != crc {
            if last {
                break;
            }
            return Err(Damaged { offset: at });
        }
        let mut r = Reader { b: payload };
        let mut changes = Vec::new();
        while !r.b.is_empty() {
            changes.push(r.change().ok_or(Damaged { offset: at })?);
        }
        changes.into_iter().for_each(&mut apply);
        at += HEADER + len;
    }
    Ok(Replayed { valid: at, torn: log.len() - at })
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
}
