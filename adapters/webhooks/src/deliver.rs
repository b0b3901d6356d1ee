//! One delivery attempt: the stored body POSTed with the Standard Webhooks headers, signed
//! afresh for the attempt's timestamp (the id and the body never change); 2xx is delivered,
//! anything else (another status, a redirect, a timeout, a refused connection) is retried.

use std::time::{Duration, Instant};

use crate::config::WebhookConfig;
use crate::db::{Due, Outcome};
use crate::error::WebhookError;

/// The HTTP client of the deliveries: no redirects followed (a receiver that moved is a
/// failure to look into, not somewhere to send signed bodies to), the attempt's timeout.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client, WebhookError> {
    reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "openvle-moodle-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| WebhookError::Client(e.without_url().to_string()))
}

/// What an attempt came to, before it is judged against the retry policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Why, for the outbox's `last_error` and the status (no URL, no body, no secret).
    Failed(String),
}

/// Sends `msg` once.
pub async fn send(
    client: &reqwest::Client,
    config: &WebhookConfig,
    msg: &Due,
) -> (Attempt, Duration) {
    let timestamp = chrono::Utc::now().timestamp();
    let signature = config.secret.sign(&msg.id, timestamp, msg.body.as_bytes());
    let started = Instant::now();
    let result = client
        .post(config.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", msg.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(msg.body.clone())
        .send()
        .await;
    let attempt = match result {
        Ok(resp) if resp.status().is_success() => Attempt::Delivered,
        Ok(resp) => Attempt::Failed(format!("the receiver answered {}", resp.status())),
        Err(e) if e.is_timeout() => Attempt::Failed(format!(
            "no answer within {} s (OPENVLE_WEBHOOK_TIMEOUT_SECS)",
            config.timeout.as_secs_f64()
        )),
        Err(e) if e.is_connect() => Attempt::Failed(format!(
            "cannot connect to the receiver: {}",
            e.without_url()
        )),
        Err(e) => Attempt::Failed(format!("sending failed: {}", e.without_url())),
    };
    (attempt, started.elapsed())
}

/// The outbox's verdict on an attempt of a message that had failed `msg.attempts` times before.
pub fn judge(config: &WebhookConfig, msg: &Due, attempt: Attempt, now: i64) -> Outcome {
    let error = match attempt {
        Attempt::Delivered => return Outcome::Delivered,
        Attempt::Failed(e) => e,
    };
    let failed = u32::try_from(msg.attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let age = Duration::from_millis(u64::try_from(now - msg.created_at_ms).unwrap_or(0));
    if (config.max_attempts > 0 && failed >= config.max_attempts) || age >= config.max_age {
        return Outcome::Dead {
            error: format!("{error} (gave up after {failed} attempt(s))"),
        };
    }
    let delay = config.backoff(failed);
    Outcome::Retry {
        next_attempt_at: now + delay.as_millis() as i64,
        error: format!("{error} (attempt {failed})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(attempts: i64, created_at_ms: i64) -> Due {
        Due {
            id: "msg_x".into(),
            event_id: "e".into(),
            kind: "moodle.in_sync".into(),
            body: "{}".into(),
            attempts,
            created_at_ms,
        }
    }

    #[test]
    fn failures_are_retried_until_the_limits() {
        let mut c = WebhookConfig::new(
            "https://h.example/x",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .unwrap();
        c.max_attempts = 3;
        let fail = || Attempt::Failed("the receiver answered 500".into());
        assert_eq!(
            judge(&c, &due(0, 0), Attempt::Delivered, 10),
            Outcome::Delivered
        );
        match judge(&c, &due(0, 0), fail(), 10) {
            Outcome::Retry {
                next_attempt_at,
                error,
            } => {
                assert!(next_attempt_at >= 10 + 500, "{next_attempt_at}");
                assert!(error.ends_with("(attempt 1)"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge(&c, &due(2, 0), fail(), 10),
            Outcome::Dead { .. }
        ));
        c.max_attempts = 0;
        let old = c.max_age.as_millis() as i64;
        assert!(matches!(
            judge(&c, &due(2, 0), fail(), old),
            Outcome::Dead { .. }
        ));
        assert!(matches!(
            judge(&c, &due(200, 0), fail(), 10),
            Outcome::Retry { .. }
        ));
    }
}
