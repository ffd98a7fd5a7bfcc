//! Escaping for the text exposition formats, shared by the series renderer
//! (which escapes a series' labels once, when the series is created) and the
//! encoder (help text, the self-metrics' labels). A leaf: it knows bytes, not
//! metrics.

/// Appends `text` escaped for a label value (or, with `escape_quotes` false,
/// for 0.0.4 HELP text): `\` -> `\\`, newline -> `\n`, `"` -> `\"`.
pub(crate) fn escape_into(out: &mut Vec<u8>, text: &str, escape_quotes: bool) {
    let bytes = text.as_bytes();
    let needs = |b: u8| b == b'\\' || b == b'\n' || (escape_quotes && b == b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if needs(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(match b {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                _ => b"\\\"",
            });
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends a label value escaped as both formats require (`\\`, `\"`, `\n`).
pub(crate) fn escape_label_value(out: &mut Vec<u8>, value: &str) {
    escape_into(out, value, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str, quotes: bool) -> String {
        let mut out = Vec::new();
        escape_into(&mut out, text, quotes);
        String::from_utf8(out).unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "not a lock-free protocol; too slow under Miri")]
    fn escaping() {
        assert_eq!(escaped(r#"a\b"c"#, true), r#"a\\b\"c"#);
        assert_eq!(escaped("line\nbreak", true), r"line\nbreak");
        assert_eq!(escaped(r#"say "hi""#, false), r#"say "hi""#);
        assert_eq!(escaped(r"\\", true), r"\\\\");
        assert_eq!(escaped("🐋 ünï", true), "🐋 ünï");
    }
}
