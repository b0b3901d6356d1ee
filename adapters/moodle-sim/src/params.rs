//! PHP request parsing as Moodle sees it: `max_input_vars` truncation, form arrays
//! (`users[0][email]`) and `validate_parameters()`-style checks that fail with Moodle's bodies.

use super::errors::WsError;

/// A PHP request value: a string or an ordered array.
#[derive(Clone, Debug, PartialEq)]
pub enum PVal {
    /// A scalar.
    S(String),
    /// An ordered array (PHP arrays keep insertion order).
    A(Vec<(String, PVal)>),
}

/// Parses `application/x-www-form-urlencoded` bytes into pairs, keeping only the first `limit`
/// variables as PHP does with `max_input_vars`. Returns the pairs and whether any were dropped.
pub fn parse_pairs(raw: &[u8], limit: usize) -> (Vec<(String, String)>, bool) {
    let all: Vec<(String, String)> = form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let truncated = all.len() > limit;
    (all.into_iter().take(limit).collect(), truncated)
}

/// Builds PHP's nested arrays from pairs (later scalars overwrite earlier ones, like PHP).
pub fn build(pairs: &[(String, String)]) -> Vec<(String, PVal)> {
    let mut root = Vec::new();
    for (k, v) in pairs {
        let segs = split_key(k);
        insert(&mut root, &segs, v.clone());
    }
    root
}

fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_string()];
    };
    let mut segs = vec![key[..open].to_string()];
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(close) => {
                segs.push(stripped[..close].to_string());
                rest = &stripped[close + 1..];
            }
            None => break,
        }
    }
    segs
}

fn insert(arr: &mut Vec<(String, PVal)>, segs: &[String], value: String) {
    let Some((first, rest)) = segs.split_first() else {
        return;
    };
    let key = if first.is_empty() {
        let next = arr
            .iter()
            .filter_map(|(k, _)| k.parse::<i64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        next.to_string()
    } else {
        first.clone()
    };
    let pos = match arr.iter().position(|(k, _)| *k == key) {
        Some(p) => p,
        None => {
            arr.push((key, PVal::S(String::new())));
            arr.len() - 1
        }
    };
    if rest.is_empty() {
        arr[pos].1 = PVal::S(value);
        return;
    }
    if !matches!(arr[pos].1, PVal::A(_)) {
        arr[pos].1 = PVal::A(Vec::new());
    }
    if let PVal::A(child) = &mut arr[pos].1 {
        insert(child, rest, value);
    }
}

/// A single structure (PHP associative array) being validated.
#[derive(Clone, Copy)]
pub struct Obj<'a>(pub &'a [(String, PVal)]);

impl<'a> Obj<'a> {
    /// The value under `k`.
    pub fn get(&self, k: &str) -> Option<&'a PVal> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    /// Fails with `invalidparameter` ("Unexpected keys detected") on any key not in `allowed`.
    pub fn only(&self, allowed: &[&str]) -> Result<(), WsError> {
        if self.0.iter().all(|(k, _)| allowed.contains(&k.as_str())) {
            Ok(())
        } else {
            Err(WsError::invalid_param())
        }
    }

    /// A required scalar.
    pub fn req_str(&self, k: &str) -> Result<&'a str, WsError> {
        self.opt_str(k)?.ok_or_else(WsError::invalid_param)
    }

    /// An optional scalar (an array here is a type error).
    pub fn opt_str(&self, k: &str) -> Result<Option<&'a str>, WsError> {
        match self.get(k) {
            None => Ok(None),
            Some(PVal::S(s)) => Ok(Some(s)),
            Some(PVal::A(_)) => Err(WsError::invalid_param()),
        }
    }

    /// A required PARAM_INT (canonical integer text only: `007`, `+5`, `5.0` fail).
    pub fn req_int(&self, k: &str) -> Result<i64, WsError> {
        self.opt_int(k)?.ok_or_else(WsError::invalid_param)
    }

    /// An optional PARAM_INT.
    pub fn opt_int(&self, k: &str) -> Result<Option<i64>, WsError> {
        match self.opt_str(k)? {
            None => Ok(None),
            Some(s) => parse_int(s).map(Some).ok_or_else(WsError::invalid_param),
        }
    }

    /// An optional PARAM_BOOL: only `0` and `1` pass validation.
    pub fn opt_bool(&self, k: &str) -> Result<Option<bool>, WsError> {
        match self.opt_str(k)? {
            None => Ok(None),
            Some("0") => Ok(Some(false)),
            Some("1") => Ok(Some(true)),
            Some(_) => Err(WsError::invalid_param()),
        }
    }

    /// A required list; its items in insertion order.
    pub fn req_list(&self, k: &str) -> Result<Vec<&'a PVal>, WsError> {
        self.opt_list(k)?.ok_or_else(WsError::invalid_param)
    }

    /// An optional list.
    pub fn opt_list(&self, k: &str) -> Result<Option<Vec<&'a PVal>>, WsError> {
        match self.get(k) {
            None => Ok(None),
            Some(PVal::A(items)) => Ok(Some(items.iter().map(|(_, v)| v).collect())),
            Some(PVal::S(_)) => Err(WsError::invalid_param()),
        }
    }
}

impl PVal {
    /// This value as a single structure.
    pub fn obj(&self) -> Result<Obj<'_>, WsError> {
        match self {
            PVal::A(items) => Ok(Obj(items)),
            PVal::S(_) => Err(WsError::invalid_param()),
        }
    }

    /// This value as a scalar.
    pub fn str(&self) -> Result<&str, WsError> {
        match self {
            PVal::S(s) => Ok(s),
            PVal::A(_) => Err(WsError::invalid_param()),
        }
    }
}

/// PHP's PARAM_INT validation: `(string)(int)$in === (string)$in`.
pub fn parse_int(s: &str) -> Option<i64> {
    let n: i64 = s.parse().ok()?;
    (n.to_string() == s).then_some(n)
}

/// What PHP's `(int)` cast makes of a string (`clean_param(PARAM_INT)`): its leading integer,
/// 0 when there is none (`"1.5"` is 1, `"abc"` is 0).
pub fn php_int(value: &str) -> i64 {
    let t = value.trim_start();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_int_cast() {
        for (s, n) in [
            ("12", 12),
            ("1.5", 1),
            ("007", 7),
            ("abc", 0),
            ("", 0),
            (" 3x", 3),
            ("-4", -4),
        ] {
            assert_eq!(php_int(s), n, "{s:?}");
        }
    }

    #[test]
    fn builds_php_arrays_column_major() {
        let (pairs, truncated) = parse_pairs(
            b"a=1&u%5B0%5D%5Bx%5D=1&u[1][x]=2&u[0][y]=3&l[]=p&l[]=q",
            100,
        );
        assert!(!truncated);
        let root = build(&pairs);
        let o = Obj(&root);
        assert_eq!(o.req_int("a").unwrap(), 1);
        let u = o.req_list("u").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].obj().unwrap().req_str("y").unwrap(), "3");
        assert_eq!(u[1].obj().unwrap().req_str("x").unwrap(), "2");
        let l = o.req_list("l").unwrap();
        assert_eq!(l[1].str().unwrap(), "q");
        let (pairs, truncated) = parse_pairs(b"a=1&b=2&c=3", 2);
        assert!(truncated);
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn php_int_and_bool() {
        assert_eq!(parse_int("12"), Some(12));
        for bad in ["007", "+5", " 5", "5.0", "12abc", ""] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
        let root = build(&[("b".into(), "true".into())]);
        assert!(Obj(&root).opt_bool("b").is_err());
    }
}
