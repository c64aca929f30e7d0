//! Caseless comparison of identity text (RFC 7643 `caseExact: false`), in the spirit of RFC
//! 8265's case-mapped username profile: canonical decomposition, Unicode default case folding,
//! then canonical composition (NFC). Two texts that differ only in Unicode normalisation (a
//! precomposed "é" and "e" + U+0301) or in case, including full folds such as "ß" / "SS", are
//! one name. The client's text is stored and returned as sent; only keys and comparisons use
//! the folded form.

use unicode_normalization::UnicodeNormalization;

/// The folded form of a text: what uniqueness claims are keyed by and what case-insensitive
/// filters and sorting compare. ASCII text folds to its ASCII lower case (the common case is
/// cheap); anything else goes through NFD → default case folding → NFC.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let folded = caseless::default_case_fold_str(&text.nfd().collect::<String>());
    folded.nfc().collect()
}

/// Whether two texts are one name when compared caselessly.
pub fn eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_full_case_folding_make_one_name() {
        let precomposed = "Jos\u{e9}@example.com";
        let decomposed = "Jose\u{301}@example.com";
        assert_ne!(precomposed, decomposed);
        assert_eq!(fold(precomposed), fold(decomposed));
        assert_eq!(fold("stra\u{df}e"), fold("STRASSE"));
        assert_eq!(fold("\u{212a}elvin"), "kelvin", "the Kelvin sign folds to k");
        assert_eq!(fold("\u{3a3}\u{39f}\u{3a6}\u{399}\u{391}"), fold("\u{3c3}\u{3bf}\u{3c6}\u{3b9}\u{3b1}"), "Greek capitals and small");
        assert!(eq("ANN@example.com", "ann@EXAMPLE.com"));
        assert!(!eq("ann", "anne"));
        // folding is idempotent, and already-folded ASCII is unchanged
        for s in [precomposed, decomposed, "stra\u{df}e", "\u{130}stanbul", "plain"] {
            assert_eq!(fold(&fold(s)), fold(s), "{s}");
        }
        assert_eq!(fold("a.b-c_d@e.f"), "a.b-c_d@e.f");
    }
}
