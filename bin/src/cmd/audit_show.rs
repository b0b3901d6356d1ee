//! `openvle-moodle audit show --event ID`: one OpenVLE event's whole story, its domain and saga
//! events interleaved in position order, one line each for a person, or `--json` lines of the
//! stored events.

use std::io::Write;

use anyhow::Context;
use views::story::{self, StoryFilter};

/// Flags of `audit show`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditShowArgs {
    /// The OpenVLE event id.
    #[arg(long)]
    pub event: String,
    /// Only these event types (e.g. `Enrolled,StepFailed`) or streams (`event`, `moodle_sync`).
    #[arg(long = "type", value_name = "T")]
    pub event_type: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub from: Option<String>,
    /// Only events recorded at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub to: Option<String>,
    /// JSON lines of the stored events instead of sentences.
    #[arg(long)]
    pub json: bool,
}

/// Prints the story; fails when the event has no recorded history at all.
pub async fn run(store: &store::Store, args: &AuditShowArgs) -> anyhow::Result<()> {
    let filter = StoryFilter::parse(
        args.event_type.as_deref(),
        args.from.as_deref(),
        args.to.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let filtered = filter != StoryFilter::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(out, "{}", story::header(&args.event))?;
    }
    let shown = views::event_story(store, &args.event, &filter, |e| {
        if args.json {
            serde_json::to_writer(&mut out, e)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", story::line(e))?;
        }
        Ok(())
    })
    .await
    .with_context(|| format!("reading the story of OpenVLE event {}", args.event))?;
    if !args.json {
        writeln!(out, "{}", story::footer(&args.event, shown, filtered))?;
    }
    out.flush()?;
    if shown == 0 && !filtered {
        anyhow::bail!("no event recorded for OpenVLE event {}", args.event);
    }
    Ok(())
}
