//! A string that must never be printed: the Moodle web-service token.
//!
//! A token is a full credential for the web-service user, so it travels only in the POST body
//! (`wstoken`) and never appears in URLs, logs, error messages, `Debug` output or panics.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret value, held in a [`secrecy::SecretString`] (zeroed when dropped). `Debug` and
/// `Display` print `[redacted]`; read it with [`Secret::expose`]. What this type adds to
/// `secrecy` is [`Secret::scrub`]: removing the value from text a server sent back.
#[derive(Clone)]
pub struct Secret(SecretString);

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret itself. Call sites are the only places the token can leak: keep them few.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }

    /// `text` with every occurrence of the secret replaced by `[redacted]`: verbatim, percent- or
    /// form-encoded (`%XX` in either case, `+` for a space, any mix of encoded and plain bytes),
    /// and escaped the way `Debug` and JSON quote strings. For text that came from outside (a
    /// server may echo what it was sent) before it goes into an error or a log.
    pub fn scrub(&self, text: &str) -> String {
        let secret = self.expose();
        if secret.is_empty() {
            return text.to_string();
        }
        let mut out = scrub_encoded(text, secret.as_bytes());
        let debug = format!("{secret:?}");
        let json = serde_json::to_string(secret).unwrap_or_default();
        for quoted in [debug, json] {
            let inner = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(&quoted);
            if !inner.is_empty() && inner != secret && out.contains(inner) {
                out = out.replace(inner, REDACTED);
            }
        }
        out
    }
}

/// What replaces a secret in text.
pub const REDACTED: &str = "[redacted]";

/// Replaces every match of `secret` in `text`, where each byte of the secret may appear as
/// itself, as `%XX` (any case) or, for a space, as `+`.
fn scrub_encoded(text: &str, secret: &[u8]) -> String {
    let t = text.as_bytes();
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        match match_at(t, i, secret) {
            Some(end) => {
                out.extend_from_slice(REDACTED.as_bytes());
                i = end;
            }
            None => {
                out.push(t[i]);
                i += 1;
            }
        }
    }
    // Matches start at ASCII `%`/`+` or at a byte of the (valid UTF-8) secret and end after a
    // whole encoded or plain character, so the output stays valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The end of a match of `secret` starting at `t[at]`, if there is one.
fn match_at(t: &[u8], at: usize, secret: &[u8]) -> Option<usize> {
    let mut i = at;
    for &b in secret {
        let c = *t.get(i)?;
        if c == b {
            i += 1;
        } else if c == b'%' && t.len() > i + 2 && hex_pair(t[i + 1], t[i + 2]) == Some(b) {
            i += 3;
        } else if c == b'+' && b == b' ' {
            i += 1;
        } else {
            return None;
        }
    }
    Some(i)
}

fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
    let h = (hi as char).to_digit(16)?;
    let l = (lo as char).to_digit(16)?;
    Some((h * 16 + l) as u8)
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("abc123token");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "abc123token");
    }

    #[test]
    fn scrub_removes_every_form() {
        let s = Secret::new("tok3n-5ecret a/b\"é");
        let raw = s.expose();
        let form: String = form_urlencoded::byte_serialize(raw.as_bytes()).collect();
        assert_ne!(form, raw);
        let lower_hex: String = raw.bytes().map(|b| format!("%{b:02x}")).collect();
        let upper_hex: String = raw.bytes().map(|b| format!("%{b:02X}")).collect();
        let debug = format!("{raw:?}");
        let json = serde_json::to_string(raw).unwrap();
        for variant in [raw.to_string(), form, lower_hex, upper_hex, debug, json] {
            let text = format!("before {variant} middle {variant}after");
            let out = s.scrub(&text);
            assert!(!out.contains(raw), "{out}");
            assert!(!out.contains("5ecret"), "{variant} -> {out}");
            assert!(out.starts_with("before "), "{out}");
            assert!(out.contains(" middle "), "{out}");
            assert!(out.ends_with("after"), "{out}");
            assert_eq!(out.matches("[redacted]").count(), 2, "{variant} -> {out}");
        }
        // A mix of plain and encoded bytes, as a proxy might echo it.
        assert_eq!(
            s.scrub("x=tok3n%2d5ecret+a%2Fb%22%C3%a9&y=1"),
            "x=[redacted]&y=1"
        );
    }

    #[test]
    fn scrub_leaves_other_text_alone() {
        let s = Secret::new("abc123token");
        for text in [
            "",
            "abc123toke",
            "abc 123token",
            "%",
            "%4",
            "%zz",
            "é ü 漢字",
            "abc123tokeN",
        ] {
            assert_eq!(s.scrub(text), text);
        }
        assert_eq!(s.scrub("abc123abc123token"), "abc123[redacted]");
        assert_eq!(Secret::new("").scrub("anything"), "anything");
    }
}
