//! The embedded store's log replay: any bytes give whole frames and a torn tail, or "damaged" —
//! never a panic, never a change invented; what was read encodes and replays to the same changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::store::wal;

fuzz_target!(|input: &[u8]| {
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
