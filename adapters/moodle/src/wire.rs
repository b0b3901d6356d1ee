//! The REST wire format: PHP form-array encoding, response parsing, batching arithmetic and the
//! local checks that mirror Moodle's parameter cleaning.
//!
//! Moodle validates every value and fails the *whole* call on one bad item, so the client checks
//! usernames and emails before sending. PHP's `max_input_vars` silently drops variables past the
//! limit, so batches are sized from a variable count and lists are encoded column by column (every
//! item's last column is a required key): a truncated request then misses a required key and fails
//! loudly instead of silently losing items.

use std::ops::Range;

use serde::de::DeserializeOwned;

use crate::error::{ErrorClass, MoodleError};

/// Largest response body read (a full site's course list is far below this).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Variables reserved for `wstoken`, `wsfunction`, `moodlewsrestformat` and scalar arguments.
pub const RESERVED_VARS: usize = 10;

/// Ordered form pairs in PHP form-array syntax (`users[0][username]`), booleans as `0`/`1`.
/// `Debug` redacts password values (the token is never in a `Form`: see [`Form::body`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &str| k == "password" || k.ends_with("[password]");
        f.debug_struct("Form")
            .field(
                "pairs",
                &self
                    .pairs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k,
                            if secret(k) {
                                crate::secret::REDACTED
                            } else {
                                v
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl ToString) -> &mut Self {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    /// Adds a boolean the way PHP's PARAM_BOOL accepts it: `0` or `1` (never `true`).
    pub fn push_bool(&mut self, key: impl Into<String>, value: bool) -> &mut Self {
        self.push(key, if value { "1" } else { "0" })
    }

    /// Adds a list of scalars: `name[0]=a&name[1]=b`.
    pub fn push_scalars<T: ToString>(&mut self, name: &str, values: &[T]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.push(format!("{name}[{i}]"), v.to_string());
        }
        self
    }

    /// Adds a list of objects column by column: `name[0][k]`, `name[1][k]`, then the next key.
    /// Every item's last field must be a required key (see the module docs for why).
    pub fn push_objects(&mut self, name: &str, items: &[Vec<(&str, String)>]) -> &mut Self {
        let mut keys: Vec<&str> = Vec::new();
        for item in items {
            for (k, _) in item {
                if !keys.contains(k) {
                    keys.push(k);
                }
            }
        }
        if let Some(anchor) = items.first().and_then(|i| i.last()).map(|(k, _)| *k) {
            keys.retain(|k| *k != anchor);
            keys.push(anchor);
        }
        for key in keys {
            for (i, item) in items.iter().enumerate() {
                if let Some((_, v)) = item.iter().find(|(k, _)| *k == key) {
                    self.push(format!("{name}[{i}][{key}]"), v.clone());
                }
            }
        }
        self
    }

    /// The pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Number of form variables (what `max_input_vars` counts).
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `application/x-www-form-urlencoded` body with the reserved parameters first.
    pub(crate) fn body(&self, token: &str, function: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("wstoken", token);
        s.append_pair("wsfunction", function);
        s.append_pair("moodlewsrestformat", "json");
        for (k, v) in &self.pairs {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// Default PHP `max_input_vars` assumed for a site release: 5000 from Moodle 4.0 (its environment
/// check requires it on PHP 8), else php.ini's default 1000.
pub fn default_max_input_vars(release: Option<&str>) -> usize {
    match release.and_then(parse_release) {
        Some((major, _)) if major >= 4 => 5000,
        _ => 1000,
    }
}

/// `"4.4.1+ (Build: 20240610)"`, `"4.4dev"` → `(4, 4)`.
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Variables one call may carry for items: 90 % of the limit minus the reserved variables.
pub fn var_budget(max_input_vars: usize) -> usize {
    (max_input_vars.saturating_sub(RESERVED_VARS) * 9 / 10).max(1)
}

/// Splits items (each costing `item_vars[i]` variables) into consecutive batches of at most
/// `budget` variables and `max_items` items. An item larger than the budget gets its own batch.
pub fn plan_batches(item_vars: &[usize], budget: usize, max_items: usize) -> Vec<Range<usize>> {
    let max_items = max_items.max(1);
    let mut out = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, &v) in item_vars.iter().enumerate() {
        let full = i > start && (used + v > budget || i - start >= max_items);
        if full {
            out.push(start..i);
            start = i;
            used = 0;
        }
        used += v;
    }
    if start < item_vars.len() {
        out.push(start..item_vars.len());
    }
    out
}

#[derive(serde::Deserialize)]
struct ExceptionBody {
    errorcode: Option<String>,
    message: Option<String>,
    exception: Option<String>,
}

/// Parses a 200 body: an exception object becomes [`MoodleError::Moodle`], anything that is not
/// JSON of the expected shape [`MoodleError::BadResponse`]. Never panics.
pub fn parse_body<T: DeserializeOwned>(function: &str, body: &[u8]) -> Result<T, MoodleError> {
    let value = parse_value(function, body)?;
    serde_json::from_value(value).map_err(|e| MoodleError::BadResponse {
        function: function.to_string(),
        detail: format!("unexpected JSON shape: {e}"),
        transient: false,
    })
}

/// Parses the body of a function returning `null` on success.
pub fn parse_null(function: &str, body: &[u8]) -> Result<(), MoodleError> {
    match parse_value(function, body)? {
        serde_json::Value::Null => Ok(()),
        // Some versions answer `{"warnings":[]}` or similar: success unless it is an exception.
        serde_json::Value::Object(_) => Ok(()),
        other => Err(MoodleError::BadResponse {
            function: function.to_string(),
            detail: format!("expected null, got {}", kind(&other)),
            transient: false,
        }),
    }
}

fn parse_value(function: &str, body: &[u8]) -> Result<serde_json::Value, MoodleError> {
    let trimmed = body.trim_ascii();
    if trimmed.first() == Some(&b'<') {
        return Err(MoodleError::BadResponse {
            function: function.to_string(),
            detail: format!(
                "an HTML/XML page instead of JSON ({} bytes): maintenance page, PHP error or proxy",
                body.len()
            ),
            transient: true,
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(trimmed).map_err(|e| MoodleError::BadResponse {
            function: function.to_string(),
            detail: format!("not JSON ({} bytes): {e}", body.len()),
            transient: e.is_eof() || e.is_syntax(),
        })?;
    if let serde_json::Value::Object(map) = &value {
        if map.contains_key("exception")
            || (map.contains_key("errorcode") && map.contains_key("message"))
        {
            let ex: ExceptionBody =
                serde_json::from_value(value.clone()).unwrap_or(ExceptionBody {
                    errorcode: None,
                    message: None,
                    exception: None,
                });
            // A blank errorcode (or exception class) says nothing: fall back to the next one.
            let present = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
            let errorcode = [ex.errorcode, ex.exception]
                .into_iter()
                .find(present)
                .flatten()
                .unwrap_or_else(|| "unknown".to_string());
            return Err(MoodleError::Moodle {
                function: function.to_string(),
                class: ErrorClass::of(&errorcode),
                errorcode,
                message: ex.message.unwrap_or_default(),
            });
        }
    }
    Ok(value)
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Moodle's PARAM_USERNAME without `extendedusernamechars`: non-empty, `[-.@_a-z0-9]` only.
pub fn is_valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 100
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.@_".contains(&b))
}

/// Whether Moodle's `validate_email()` accepts the address: the engine's one email rule, which
/// the domain owns ([`domain::participant::is_valid_email`]) because the API refuses a participant
/// by it too; the client checks a batch with the same rule so that one bad email never fails a
/// whole call.
pub fn is_valid_email(e: &str) -> bool {
    domain::participant::is_valid_email(e)
}

/// Whether Moodle's PARAM_TEXT/PARAM_NOTAGS cleaning would change the value, which makes Moodle
/// refuse the whole call. The cleaning is PHP's `strip_tags()`: it opens a tag at every `<` not
/// followed by whitespace (the end of the text included, so `1<2` and `x<` are refused while
/// `a < b` passes: observed on the lab site) and drops NUL bytes.
pub fn has_tags(s: &str) -> bool {
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let opens_tag = c == '<'
            && !chars
                .peek()
                .is_some_and(|n| n.is_ascii_whitespace() || *n == '\x0B');
        if c == '\0' || opens_tag {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;
