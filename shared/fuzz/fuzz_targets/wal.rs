//! The embedded store's log replay: any bytes give whole frames and a torn tail, or "damaged" —
//! never a panic, never a change invented; what was read encodes and replays to the same changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::store::{Item, wal};

fuzz_target!(|input: &[u8]| {
    // a first byte of 0xFF: the rest makes a log of whole frames, one bit of which is flipped
    if input.first() == Some(&0xFF) {
        return flipped_bit(&input[1..]);
    }
    // an odd first byte: the rest is one frame's payload, framed here with a correct checksum, so
    // the decoder behind the checksum is reached; an even one: the rest is a log as it is
    let Some((mode, rest)) = input.split_first() else { return };
    let framed;
    let data = if mode % 2 == 1 {
        let mut f = (rest.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&crc32(rest).to_le_bytes());
        f.extend_from_slice(rest);
        framed = f;
        &framed[..]
    } else {
        rest
    };
    let mut read = Vec::new();
    let Ok(r) = wal::replay(data, |c| read.push(c)) else { return };
    assert_eq!(r.valid + r.torn, data.len());
    // a frame with a correct checksum is decoded or refused, never taken for a torn append
    assert!(mode % 2 == 0 || r.torn == 0);
    // the whole frames alone replay to the same changes, with nothing torn
    let mut again = Vec::new();
    assert_eq!(wal::replay(&data[..r.valid], |c| again.push(c)).map(|r| r.torn), Ok(0));
    assert_eq!(again, read);
    // and what was read, written as one frame, reads back the same
    let mut frame = Vec::new();
    wal::encode(&read, &mut frame);
    let mut once = Vec::new();
    assert_eq!(wal::replay(&frame, |c| once.push(c)).map(|r| (r.valid, r.torn)), Ok((frame.len(), 0)));
    assert_eq!(once, read);
});

/// A log of frames made from `input` (two bytes choose the bit, the rest is cut into documents),
/// with one bit flipped: anywhere before the last frame it is damage, never a torn tail (a
/// start would drop every frame after it); in the last frame it is a torn append. A survey keeps
/// only changes the log really held, in their order.
fn flipped_bit(input: &[u8]) {
    let Some((pick, docs)) = input.split_first_chunk::<2>() else { return };
    let changes: Vec<Vec<wal::Change>> = docs
        .chunks(7)
        .enumerate()
        .map(|(n, d)| vec![wal::Change::Put(Item::new("p", format!("s{n}"), String::from_utf8_lossy(d).into_owned(), n as u64))])
        .collect();
    if changes.len() < 2 {
        return;
    }
    let mut log = Vec::new();
    for c in &changes[..changes.len() - 1] {
        wal::encode(c, &mut log);
    }
    let last = log.len();
    wal::encode(&changes[changes.len() - 1], &mut log);
    let bit = usize::from(u16::from_le_bytes(*pick)) % (log.len() * 8);
    log[bit / 8] ^= 1 << (bit % 8);
    match wal::replay(&log, |_| {}) {
        Err(_) => assert!(bit / 8 < last, "a flip in the last frame is a torn append"),
        Ok(r) => assert!(bit / 8 >= last && r.valid == last, "a flip at byte {} was taken for a torn tail", bit / 8),
    }
    let all = changes.concat();
    let (_, kept) = wal::survey(&log);
    let mut rest = all.iter();
    assert!(kept.iter().all(|k| rest.any(|c| c == k)), "a survey keeps only what the log held, in order");
}

/// CRC-32 (ISO-HDLC, as the log uses), bit by bit: an independent check of the frames' checksum.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}
