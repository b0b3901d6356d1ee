//! Moodle's own parameter rules, written here from Moodle's code (`lib/moodlelib.php`
//! `clean_param()` and `validate_email()`, PHP's `strip_tags()` and `FILTER_VALIDATE_EMAIL`) and
//! the lab site's answers (`shared/moodle/`), never taken from the client.
//!
//! The simulator stands for Moodle: if it borrowed the client's validators, a client rule that
//! differs from Moodle's would be copied into the simulator and no test could see it. Written
//! apart, the contract suite (which runs every test against the simulator and the real site)
//! shows any disagreement as a failure on one of them.

/// The characters PHP's `trim()` removes (it knows no other whitespace).
const PHP_TRIM: &[char] = &[' ', '\t', '\n', '\r', '\0', '\x0B'];

/// `clean_param($v, PARAM_USERNAME)` with `$CFG->extendedusernamechars` off (the default):
/// trimmed, lowercased, then every byte but `[-.@_a-z0-9]` removed (the regex has no `/u`, so a
/// multibyte character goes whole).
pub fn clean_username(v: &str) -> String {
    v.trim_matches(PHP_TRIM)
        .to_lowercase()
        .chars()
        .filter(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '.' | '@' | '_'))
        .collect()
}

/// Whether `validate_parameters()` lets a PARAM_USERNAME value through: it refuses any value its
/// cleaning would change (`"Ada"`, `" ada"`, `"jürgen"` are refused, not rewritten).
pub fn username_unchanged(v: &str) -> bool {
    clean_username(v) == v
}

/// The width of `user.username` (varchar 100). Nothing checks it before the insert: a longer
/// username fails in the database (`dmlwriteexception`, observed on the lab site).
pub const USERNAME_COLUMN: usize = 100;

/// Whether PHP's `strip_tags()` would change `v`, which is what PARAM_TEXT and PARAM_NOTAGS
/// refuse in `validate_parameters()`. `strip_tags()` opens a tag at every `<` that is not
/// followed by whitespace (the end of the string included: `"a<"` loses its `<`), drops NUL
/// bytes, and keeps a lone `>`. So `"a < b"` passes and `"1<2"`, `"x<"`, `"<=>"` do not
/// (each observed on the lab site).
pub fn strip_tags_changes(v: &str) -> bool {
    let b = v.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == 0
            || (c == b'<'
                && !matches!(
                    b.get(i + 1),
                    Some(b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
                ))
    })
}

/// Moodle's `validate_email()`: PHPMailer's `validateAddress()` (which refuses line breaks, then
/// asks PHP's `filter_var($address, FILTER_VALIDATE_EMAIL)`, without the Unicode flag) and no
/// `<` or `>`. So an address is ASCII; its local part a dot-separated run of atoms and quoted
/// strings of at most 64 characters; its domain either a bracketed IP literal or at least two
/// hostname labels, the last beginning with a letter (`a@localhost` and `a@x.123` are refused,
/// `a@[127.0.0.1]` and `"a.b"@x.org` accepted: observed on the lab site).
pub fn validate_email(address: &str) -> bool {
    if address.is_empty()
        || address.len() > 320
        || address.contains(['\n', '\r', '<', '>'])
        || !address.is_ascii()
    {
        return false;
    }
    let b = address.as_bytes();
    let Some(at) = local_part_end(b) else {
        return false;
    };
    if units(&b[..at]) > 64 || units(b) > 254 {
        return false;
    }
    let domain = &address[at + 1..];
    match domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        Some(literal) => ip_literal(literal),
        None => hostname(domain),
    }
}

/// Where the local part ends (the index of its `@`): atoms and quoted strings joined by single
/// dots. `None` when the local part does not have that shape or no `@` follows it.
fn local_part_end(b: &[u8]) -> Option<usize> {
    let atom = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match *b.get(i)? {
                    b'"' => break,
                    b'\\' if b.get(i + 1).is_some_and(|c| *c <= 0x7F) => i += 2,
                    0x01..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0x21 | 0x23..=0x5B | 0x5D..=0x7F => {
                        i += 1
                    }
                    _ => return None,
                }
            }
            i += 1;
        } else {
            let start = i;
            while b.get(i).is_some_and(|c| atom(*c)) {
                i += 1;
            }
            if i == start {
                return None;
            }
        }
        match b.get(i)? {
            b'.' => i += 1,
            b'@' => return Some(i),
            _ => return None,
        }
    }
}

/// The length PHP's pattern counts: a quote does not count, a backslash pair counts once.
fn units(b: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {}
            b'\\' => {
                n += 1;
                i += 1;
            }
            _ => n += 1,
        }
        i += 1;
    }
    n
}

/// `label.label…tld`: labels of letters and digits joined by hyphens, at most 63 characters,
/// the last label starting with a letter (`xn--` punycode labels are of that shape).
fn hostname(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    let word = |l: &str| {
        l.split('-').filter(|w| !w.is_empty()).count() > 0
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    let Some((tld, rest)) = labels.split_last() else {
        return false;
    };
    !rest.is_empty()
        && labels.iter().all(|l| l.len() <= 63 && word(l))
        && tld.starts_with(|c: char| c.is_ascii_alphabetic())
}

/// `[1.2.3.4]` or `[IPv6:…]`, the dotted quad without leading zeros.
fn ip_literal(l: &str) -> bool {
    let v6 = l
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
        .map(|_| &l[5..]);
    match v6 {
        Some(addr) => addr.parse::<std::net::Ipv6Addr>().is_ok(),
        None => l.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// The branch (`major.minor`) of a `release` string as Moodle writes it: `4.4dev (Build:
/// 20231124)`, `5.1+ (Build: 20251017)`, `3.11.4`.
pub fn release_branch(release: &str) -> Option<(u32, u32)> {
    let digits = |s: &str| -> Option<(u32, usize)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s[..n].parse().ok()?, n))
    };
    let s = release.trim_start();
    let (major, n) = digits(s)?;
    let minor = s[n..]
        .strip_prefix('.')
        .and_then(digits)
        .map_or(0, |(m, _)| m);
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_as_param_username() {
        assert_eq!(clean_username(" Ada.L "), "ada.l");
        assert_eq!(clean_username("o'neil"), "oneil");
        assert_eq!(clean_username("jürgen"), "jrgen");
        for ok in ["teacher.ada", "a-b_c@x.org", "x9"] {
            assert!(username_unchanged(ok), "{ok}");
        }
        for bad in ["Ada", " ada", "ada lovelace", "o'neil", "é", "tag+x"] {
            assert!(!username_unchanged(bad), "{bad}");
        }
    }

    #[test]
    fn tags_as_strip_tags() {
        for changed in [
            "<b>x</b>",
            "Lab <intro>",
            "1<2",
            "x<",
            "<=>",
            "a\0b",
            "<!-- c -->",
        ] {
            assert!(strip_tags_changes(changed), "{changed:?}");
        }
        for kept in ["a < b", "a > b", "Ada", "x <\ty", "5 > 3 & 2 < 4"] {
            assert!(!strip_tags_changes(kept), "{kept:?}");
        }
    }

    #[test]
    fn emails_as_validate_email() {
        for ok in [
            "a@example.org",
            "Case.Test@Example.org",
            "a+b@x.co.uk",
            "O'Neil@x.io",
            "\"a.b\"@example.org",
            "\"a@b\"@example.org",
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "a@xn--bcher-kva.example",
            "a@x.c0m",
            "a-1@x-y.a-b",
        ] {
            assert!(validate_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@localhost",
            "a@x.123",
            "@x.org",
            "a@@x.org",
            "a b@x.org",
            "\"a b\"@x.org",
            "<a@x.org>",
            "a..b@x.org",
            ".a@x.org",
            "a.@x.org",
            "a@-x.org",
            "a@x.-ab",
            "a@x.ab-",
            "a@x..org",
            "jöran@uni.example",
            "a@bücher.example",
            "a\"@b.co",
            "a@[127.0.0.01]",
            "a@[1.2.3]",
        ] {
            assert!(!validate_email(bad), "{bad}");
        }
        assert!(validate_email(&format!("{}@x.org", "a".repeat(64))));
        assert!(!validate_email(&format!("{}@x.org", "a".repeat(65))));
        assert!(!validate_email(&format!("a@{}.org", "b".repeat(64))));
        assert!(validate_email(&format!("a@{}.org", "b".repeat(63))));
    }

    #[test]
    fn release_branches() {
        assert_eq!(release_branch("4.4dev (Build: 20231124)"), Some((4, 4)));
        assert_eq!(release_branch("5.1+ (Build: 20251017)"), Some((5, 1)));
        assert_eq!(release_branch("3.11.4"), Some((3, 11)));
        assert_eq!(release_branch("4"), Some((4, 0)));
        assert_eq!(release_branch("dev"), None);
    }
}
