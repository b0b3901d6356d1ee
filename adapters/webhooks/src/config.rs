//! The webhooks' settings, typed once: the caller (the binary's settings) reads the variables and
//! hands their values here; this crate reads no environment.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::WebhookError;
use crate::sign::WebhookSecret;

/// The variable the endpoint is read from.
pub const URL_VAR: &str = "OPENVLE_WEBHOOK_URL";

/// Where and how messages are delivered.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: Url,
    pub secret: WebhookSecret,
    /// Time allowed for one attempt (connect, send, answer).
    pub timeout: Duration,
    /// OpenVLE events whose messages are sent at once (each event's in order).
    pub concurrency: usize,
    /// First retry delay (doubled per failed attempt, with jitter).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Failed attempts after which a message is dead (0: no limit but `max_age`).
    pub max_attempts: u32,
    /// Age after which a message still failing is dead.
    pub max_age: Duration,
    /// How often the reader looks for new log rows and the sender for due retries.
    pub poll_interval: Duration,
    /// This process's name in the outbox's leases (a restart under the same name takes its
    /// leases back at once).
    pub worker_id: String,
    /// Log rows per reader transaction.
    pub read_batch: usize,
    /// Delivered messages are deleted after this long.
    pub keep_delivered: Duration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &shown_url(&self.url))
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("concurrency", &self.concurrency)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("max_attempts", &self.max_attempts)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// The endpoint as logs show it: scheme, host, port and path (no credentials, no query).
pub fn shown_url(url: &Url) -> String {
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses the endpoint: `https://…`, or `http://` to a loopback address only (the body names
/// events and participants by id; nothing else should read it on the way).
pub fn parse_url(value: &str) -> Result<Url, WebhookError> {
    let err = |code, message: String| WebhookError::Config {
        var: URL_VAR,
        code,
        message,
    };
    let url = Url::parse(value.trim()).map_err(|e| {
        err(
            "webhook_url_invalid",
            format!("not an absolute URL ({e}); expected https://host/path"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(err(
                "webhook_url_insecure",
                "http:// is accepted only for a loopback host (127.0.0.1, ::1, localhost); use https://"
                    .into(),
            ))
        }
        other => {
            return Err(err(
                "webhook_url_invalid",
                format!("scheme {other:?} is not supported; expected https://host/path"),
            ))
        }
    }
    if url.host().is_none() {
        return Err(err("webhook_url_invalid", "the URL has no host".into()));
    }
    Ok(url)
}

impl WebhookConfig {
    /// The endpoint and the secret (`whsec_…`), with the defaults for the rest: 10 s per
    /// attempt, 4 events at once, retries from 1 s doubling to 15 min, dead after 3 days.
    pub fn new(url: &str, secret: &str) -> Result<WebhookConfig, WebhookError> {
        Ok(WebhookConfig {
            url: parse_url(url)?,
            secret: WebhookSecret::parse(secret)?,
            timeout: Duration::from_secs(10),
            concurrency: 4,
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(15 * 60),
            max_attempts: 0,
            max_age: Duration::from_secs(3 * 24 * 3600),
            poll_interval: Duration::from_millis(500),
            worker_id: format!("webhooks-{}", std::process::id()),
            read_batch: 500,
            keep_delivered: Duration::from_secs(7 * 24 * 3600),
        })
    }

    /// The delay before the next attempt after `failed` failed attempts (1 for the first):
    /// `retry_base · 2^(failed-1)`, capped at `retry_max`, then drawn uniformly from its upper
    /// half (jitter, so receivers coming back are not hit by every message at once).
    pub fn backoff(&self, failed: u32) -> Duration {
        let base = self.retry_base.as_millis().max(1) as u64;
        let cap = (self.retry_max.as_millis() as u64).max(base);
        let exp = failed.saturating_sub(1).min(40);
        let full = base.saturating_mul(1u64 << exp).min(cap);
        let low = full / 2;
        let jittered = if full > low {
            rand::Rng::gen_range(&mut rand::thread_rng(), low..=full)
        } else {
            full
        };
        Duration::from_millis(jittered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn urls_are_https_or_loopback_http() {
        assert!(WebhookConfig::new("https://core.example.org/hooks", SECRET).is_ok());
        assert!(WebhookConfig::new("http://127.0.0.1:9/h", SECRET).is_ok());
        assert!(WebhookConfig::new("http://[::1]:9/h", SECRET).is_ok());
        let e = WebhookConfig::new("http://core.example.org/h", SECRET).unwrap_err();
        assert_eq!(e.code(), Some("webhook_url_insecure"));
        assert!(e.to_string().starts_with("OPENVLE_WEBHOOK_URL: "), "{e}");
        let e = WebhookConfig::new("core.example.org", SECRET).unwrap_err();
        assert_eq!(e.code(), Some("webhook_url_invalid"));
        let c = WebhookConfig::new("https://u:pw@core.example.org/h?token=t", SECRET).unwrap();
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("pw") && !debug.contains("token=t"),
            "{debug}"
        );
        assert!(!debug.contains("MfKQ9r8"), "{debug}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let mut c = WebhookConfig::new("https://h.example/x", SECRET).unwrap();
        c.retry_base = Duration::from_millis(100);
        c.retry_max = Duration::from_millis(1000);
        for _ in 0..50 {
            let d1 = c.backoff(1).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = c.backoff(3).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d30 = c.backoff(30).as_millis();
            assert!((500..=1000).contains(&d30), "{d30}");
        }
    }
}
