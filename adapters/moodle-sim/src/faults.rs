//! Fault injection, settable at runtime. Random faults come from the simulator's seeded RNG, so a
//! test with a fixed seed and call sequence sees the same faults on every run.

use serde::{Deserialize, Serialize};

/// How a transient failure answers (nothing is applied).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientKind {
    /// HTTP 200 with `ex_unabletolock` (what concurrent duplications got on the observed site).
    #[default]
    UnableToLock,
    /// HTTP 503 from a proxy.
    Http503,
    /// An HTML maintenance page with HTTP 200.
    HtmlPage,
}

/// How a lost response looks once the effect has been applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostKind {
    /// HTTP 502 from a proxy.
    #[default]
    Http502,
    /// The connection is closed in the middle of the body.
    Drop,
}

/// One fault to apply to the next matching call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ScriptedFault {
    /// A transient failure; nothing applied.
    Transient {
        /// Its shape.
        #[serde(default)]
        how: TransientKind,
    },
    /// Apply the effect, then lose the response.
    Lost {
        /// Its shape.
        #[serde(default)]
        how: LostKind,
    },
    /// Answer this exception body (nothing applied).
    Exception {
        /// PHP class.
        exception: String,
        /// errorcode.
        errorcode: String,
        /// message.
        message: String,
    },
    /// Answer HTTP 200 with one warning whose message echoes the request, token included, as
    /// a plugin or proxy that quotes what it was sent does (nothing applied). For the test that
    /// no text from Moodle carries the token into events or logs.
    EchoWarning {
        /// warningcode.
        warningcode: String,
    },
}

/// A scripted fault and the function it waits for (`None` = the next call of any function).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueuedFault {
    /// Function name, or any.
    #[serde(default)]
    pub function: Option<String>,
    /// The fault.
    pub fault: ScriptedFault,
}

/// Runtime behaviour knobs of the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added to every call, in milliseconds.
    pub latency_ms: u64,
    /// Added to duplications (between the skeleton course and the finished one), in milliseconds.
    pub duplicate_latency_ms: u64,
    /// Probability (0..1) that a call fails transiently without effect.
    pub transient_error_rate: f64,
    /// Shape of random transient failures.
    pub transient_kind: TransientKind,
    /// Probability (0..1) that a call is applied but its response lost.
    pub lose_response_rate: f64,
    /// Shape of random lost responses.
    pub lost_kind: LostKind,
    /// PHP `max_input_vars`: variables past it are silently dropped.
    pub max_input_vars: usize,
    /// Web services or REST disabled: HTTP 403 with an empty body.
    pub rest_disabled: bool,
    /// Probability (0..1) that a duplication whose backup ends while another backup of the
    /// same template is still on disk fails to write its file: `storedfilenotcreated`, nothing
    /// left behind (seen on the lab: 1 in 18 with six duplications at a time). 0 by default:
    /// the simulator's phases overlap far more often than a loaded real site's.
    pub backup_clash_rate: f64,
    /// Faults for the next matching calls, applied first-in first-out.
    pub queue: Vec<QueuedFault>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency_ms: 0,
            duplicate_latency_ms: 0,
            transient_error_rate: 0.0,
            transient_kind: TransientKind::UnableToLock,
            lose_response_rate: 0.0,
            lost_kind: LostKind::Http502,
            max_input_vars: 5000,
            rest_disabled: false,
            backup_clash_rate: 0.0,
            queue: Vec::new(),
        }
    }
}

impl Faults {
    /// Takes the first queued fault for `function`, if any.
    pub(crate) fn take_queued(&mut self, function: &str) -> Option<ScriptedFault> {
        let pos = self
            .queue
            .iter()
            .position(|q| q.function.is_none() || q.function.as_deref() == Some(function))?;
        Some(self.queue.remove(pos).fault)
    }
}
