//! Secrets at start-up: the one place of the `VAR_FILE` rule and of the token rules.
//!
//! `VAR_FILE` is the convention of container images and systemd credentials: a secret kept in a
//! file (mode 0400, a mounted secret) rather than in the environment, which `/proc/PID/environ`
//! and `docker inspect` show. [`resolve_files`] runs before clap reads anything, so every
//! setting below is read one way, whichever way it was given.
//!
//! The token rules refuse mistakes that otherwise show up only as every request getting 401
//! (a trailing newline) or as a hole (the auditor's token being the writer's).

use std::path::Path;

use clap::parser::ValueSource;
use clap::ArgMatches;

/// The settings that may be given as `VAR_FILE`: every token, the database URL (it may carry a
/// password) and the webhooks' signing secret.
pub const FILE_VARS: &[&str] = &[
    "OPENVLE_API_TOKEN",
    "OPENVLE_AUDIT_TOKEN",
    "MOODLE_TOKEN",
    "DATABASE_URL",
    "OPENVLE_WEBHOOK_SECRET",
];

/// Shorter tokens are warned about: a token is guessed offline as fast as it is short.
pub const MIN_TOKEN_LEN: usize = 16;

/// Refusing two tokens that are one: the auditor would be a writer.
pub const SAME_TOKENS: &str = "OPENVLE_API_TOKEN and OPENVLE_AUDIT_TOKEN are the same value: the auditor would be a writer; give them different tokens";

/// The content of a `VAR_FILE`: one trailing newline (what `echo x > file` writes) removed.
pub fn file_value(content: &str) -> &str {
    content
        .strip_suffix("\r\n")
        .or_else(|| content.strip_suffix('\n'))
        .unwrap_or(content)
}

/// For each of [`FILE_VARS`] given as `VAR_FILE`, sets `VAR` to the file's value. `get` reads a
/// variable, `set` sets one (the process environment in `main`, a map in tests).
pub fn resolve_files(
    get: impl Fn(&str) -> Option<String>,
    mut set: impl FnMut(&str, String),
) -> anyhow::Result<()> {
    for var in FILE_VARS {
        let Some(path) = get(&format!("{var}_FILE")).filter(|p| !p.is_empty()) else {
            continue;
        };
        if get(var).is_some() {
            anyhow::bail!("{var} and {var}_FILE are both set: give one");
        }
        // The error's kind only: never a byte of what the file holds.
        let content = std::fs::read_to_string(Path::new(&path))
            .map_err(|e| anyhow::anyhow!("{var}_FILE: cannot read {path}: {}", e.kind()))?;
        set(var, file_value(&content).to_string());
    }
    Ok(())
}

/// A token's rules: no surrounding whitespace (an error); shorter than [`MIN_TOKEN_LEN`] or
/// given on the command line (warnings). `flag` is how the command line names it.
pub fn check_token(
    var: &str,
    flag: &str,
    value: &str,
    source: Option<ValueSource>,
) -> anyhow::Result<()> {
    if value.trim() != value {
        anyhow::bail!("{var}: {}", moodle::config::WHITESPACE);
    }
    if source == Some(ValueSource::CommandLine) {
        tracing::warn!("{flag} was given on the command line, where `ps` shows it to every user: use {var} or {var}_FILE");
    }
    if !value.is_empty() && value.chars().count() < MIN_TOKEN_LEN {
        tracing::warn!("{var} is shorter than {MIN_TOKEN_LEN} characters: use a long random token (e.g. `openssl rand -hex 32`)");
    }
    Ok(())
}

/// The rules of `serve`'s two tokens, each alone and together; `serve` is the subcommand's
/// matches (where each value came from).
pub fn check_api_tokens(
    serve: Option<&ArgMatches>,
    writer: Option<&str>,
    auditor: Option<&str>,
) -> anyhow::Result<()> {
    let source = |id: &str| serve.and_then(|m| m.value_source(id));
    if let Some(w) = writer {
        check_token("OPENVLE_API_TOKEN", "--api-token", w, source("api_token"))?;
    }
    if let Some(a) = auditor {
        check_token(
            "OPENVLE_AUDIT_TOKEN",
            "--audit-token",
            a,
            source("audit_token"),
        )?;
    }
    match (writer, auditor) {
        (Some(w), Some(a)) if !w.is_empty() && w == a => anyhow::bail!(SAME_TOKENS),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resolve(vars: &[(&str, &str)]) -> anyhow::Result<BTreeMap<String, String>> {
        let env: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = BTreeMap::new();
        resolve_files(
            |k| env.get(k).cloned(),
            |k, v| {
                out.insert(k.to_string(), v);
            },
        )?;
        Ok(out)
    }

    #[test]
    fn a_file_gives_its_content_less_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "sekrit-value\n").unwrap();
        let p = path.to_str().unwrap();
        let out = resolve(&[("OPENVLE_API_TOKEN_FILE", p)]).unwrap();
        assert_eq!(out["OPENVLE_API_TOKEN"], "sekrit-value");
        assert_eq!(file_value("x\n\n"), "x\n");
        assert_eq!(file_value("x\r\n"), "x");
        assert_eq!(file_value(" x"), " x");
        // Still whitespace after the one newline: the token rule refuses it.
        std::fs::write(&path, "sekrit-value \n").unwrap();
        let out = resolve(&[("MOODLE_TOKEN_FILE", p)]).unwrap();
        assert_eq!(out["MOODLE_TOKEN"], "sekrit-value ");
        let e =
            check_token("MOODLE_TOKEN", "--moodle-token", &out["MOODLE_TOKEN"], None).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("MOODLE_TOKEN: the value has surrounding whitespace"));
        assert!(!e.to_string().contains("sekrit"));
    }

    #[test]
    fn both_set_or_an_unreadable_file_is_refused_by_name() {
        let e = resolve(&[("DATABASE_URL", "x"), ("DATABASE_URL_FILE", "/nope")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DATABASE_URL and DATABASE_URL_FILE are both set: give one"
        );
        let e = resolve(&[("OPENVLE_AUDIT_TOKEN_FILE", "/no/such/file")]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("OPENVLE_AUDIT_TOKEN_FILE: cannot read /no/such/file: "),
            "{text}"
        );
    }

    #[test]
    fn whitespace_and_one_token_for_both_roles_are_refused() {
        let e = check_token("OPENVLE_API_TOKEN", "--api-token", "abc\n", None).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("OPENVLE_API_TOKEN: the value has surrounding whitespace"));
        let same = "0123456789abcdef0123";
        let e = check_api_tokens(None, Some(same), Some(same)).unwrap_err();
        assert_eq!(e.to_string(), SAME_TOKENS);
        assert!(!e.to_string().contains(same));
        check_api_tokens(None, Some(same), Some("another-long-token-value")).unwrap();
    }
}
