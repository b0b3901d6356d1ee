//! The Standard Webhooks signature: `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
//! the key being the base64-decoded part of a secret written `whsec_<base64>`.
//!
//! The key is held in a [`secrecy::SecretSlice`] (zeroed on drop, `[REDACTED]` in `Debug`) and
//! leaves it only into the MAC: it is never formatted, logged or put into an error.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use crate::error::WebhookError;

/// The variable the secret is read from (named in every error about it).
pub const SECRET_VAR: &str = "OPENVLE_WEBHOOK_SECRET";

/// How a secret is written: `whsec_` and the base64 of the key.
pub const SECRET_PREFIX: &str = "whsec_";

/// The signing key of the webhooks.
#[derive(Clone)]
pub struct WebhookSecret(SecretSlice<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// Parses `whsec_<base64 key>`. The errors say what is wrong with the value, never what it
    /// is: `webhook_secret_prefix` (no `whsec_`), `webhook_secret_encoding` (not base64),
    /// `webhook_secret_short` (a key of fewer than 16 bytes: guessed offline as fast as it is
    /// short; the specification asks for 24 to 64).
    pub fn parse(value: &str) -> Result<WebhookSecret, WebhookError> {
        let err = |code, message: &str| WebhookError::Config {
            var: SECRET_VAR,
            code,
            message: message.to_string(),
        };
        let Some(encoded) = value.strip_prefix(SECRET_PREFIX) else {
            return Err(err(
                "webhook_secret_prefix",
                "must be written whsec_<base64 of the key> (Standard Webhooks), e.g. \
                 whsec_$(openssl rand -base64 32)",
            ));
        };
        let key = STANDARD.decode(encoded.as_bytes()).map_err(|_| {
            err(
                "webhook_secret_encoding",
                "the part after whsec_ is not standard base64 (A-Z a-z 0-9 + /, = padding)",
            )
        })?;
        if key.len() < 16 {
            return Err(err(
                "webhook_secret_short",
                "the key is shorter than 16 bytes; use 24 to 64 random bytes, e.g. \
                 whsec_$(openssl rand -base64 32)",
            ));
        }
        Ok(WebhookSecret(SecretSlice::from(key)))
    }

    /// The `webhook-signature` header value of one delivery attempt.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable_key(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` (space-separated `v1,<sig>` entries, as a receiver gets them) holds the
    /// signature of this message: what a receiver does, for the tests and the docs' example.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let want = self.sign(msg_id, timestamp, body);
        header
            .split_whitespace()
            .any(|sig| constant_time_eq(sig.as_bytes(), want.as_bytes()))
    }
}

#[cold]
fn unreachable_key() -> ! {
    // HMAC-SHA256 accepts keys of every length (longer ones are hashed).
    panic!("HMAC refused a key")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector published with the Standard Webhooks specification.
    #[test]
    fn signs_the_specifications_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            "v1,bm9ldHUK v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            br#"{"test": 2432232314}"#,
            &sig
        ));
    }

    #[test]
    fn malformed_secrets_are_refused_by_code_without_showing_them() {
        for (value, code) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook_secret_prefix"),
            ("whsec_not*base64!", "webhook_secret_encoding"),
            ("whsec_c2hvcnQ=", "webhook_secret_short"),
        ] {
            let e = WebhookSecret::parse(value).unwrap_err();
            assert_eq!(e.code(), Some(code), "{e}");
            let text = e.to_string();
            assert!(text.starts_with("OPENVLE_WEBHOOK_SECRET: "), "{text}");
            assert!(!text.contains(value.trim_start_matches("whsec_")), "{text}");
        }
        let s = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{s:?}"), "WebhookSecret([redacted])");
    }
}
