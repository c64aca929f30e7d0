//! The few cryptographic and encoding primitives the core uses: base64url, OS randomness, lower
//! hex and SHA-256. A leaf module: it depends on nothing else of the crate.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// Cryptographically random bytes from the OS.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        // The OS RNG never fails on supported platforms; refuse to continue with weak keys.
        std::process::abort();
    }
    buf
}

/// Lower-case hex (every authenticated request hashes its secret: no formatting machinery here).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// The SHA-256 of a text, as lower hex.
pub fn sha256_hex(text: &str) -> String {
    sha256_hex_bytes(text.as_bytes())
}

/// The SHA-256 of bytes, as lower hex.
pub fn sha256_hex_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Whether two byte strings are equal, in a time that depends on their lengths only: every
/// byte is compared, with no exit at the first difference (a key's hash is checked this way).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // the optimizer sees no value it could decide early on
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_is_equality() {
        assert!(same_bytes(b"", b""));
        assert!(same_bytes(b"ba7816bf", b"ba7816bf"));
        assert!(!same_bytes(b"ba7816bf", b"ba7816be"));
        assert!(!same_bytes(b"ca7816bf", b"ba7816bf"));
        assert!(!same_bytes(b"ba7816bf", b"ba7816b"));
    }

    #[test]
    fn stored_hashes_are_lower_hex_sha256() {
        // keys already issued are stored in this form: it must never change
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(b64_decode(&b64(b"\x00\xffscim")).unwrap(), b"\x00\xffscim");
    }
}
