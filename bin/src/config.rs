//! Logging and the event store, from the settings read once at start-up ([`crate::settings`]).

use anyhow::Context;

use crate::cli::Global;
use crate::settings::Settings;

/// Logs go to stderr so that commands printing data (export, status --json) stay pipeable.
pub fn init_tracing(global: &Global, default_filter: &str) {
    let wanted = global.log.as_deref().unwrap_or(default_filter);
    let filter = tracing_subscriber::EnvFilter::try_new(wanted)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if global.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Opens (and migrates) the event store.
pub async fn open_store(settings: &Settings) -> anyhow::Result<store::Store> {
    let url = &settings.database_url;
    store::Store::connect(url)
        .await
        .with_context(|| format!("opening the event store (DATABASE_URL={})", redact_url(url)))
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
