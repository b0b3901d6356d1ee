//! `openvle-moodle replay`: rebuild every read model (event views, the Moodle-side view, the
//! audit index) from position 0, aside, and swap it in. No Moodle call at all: this command
//! has no Moodle client. Safe while the engine serves.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use projections::saga::SagaSettings;
use views::{ReplayOptions, ReplayPhase, ReplayProgress};

/// Flags of `replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Events read, folded and written per transaction.
    #[arg(long, default_value_t = 2000)]
    pub page_size: usize,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Progress on stderr: a bar on a terminal, a line every few seconds otherwise.
struct Reporter {
    bar: Option<ProgressBar>,
    last_line: Instant,
    last_phase: Option<ReplayPhase>,
}

impl Reporter {
    fn new(plain: bool) -> Self {
        let bar = (!plain && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Reporter {
            bar,
            last_line: Instant::now(),
            last_phase: None,
        }
    }

    fn phase_name(phase: ReplayPhase) -> &'static str {
        match phase {
            ReplayPhase::Building => "building",
            ReplayPhase::Swapping => "swapping",
            ReplayPhase::CatchingUp => "catching up",
            ReplayPhase::Done => "done",
        }
    }

    fn report(&mut self, p: &ReplayProgress) {
        let phase_changed = self.last_phase != Some(p.phase);
        self.last_phase = Some(p.phase);
        if let Some(bar) = &self.bar {
            bar.set_length(p.head.max(p.position).max(0) as u64);
            bar.set_position(p.position.max(0) as u64);
            bar.set_message(Self::phase_name(p.phase));
            if p.phase == ReplayPhase::Done {
                bar.finish();
            }
            return;
        }
        if phase_changed || self.last_line.elapsed() >= Duration::from_secs(2) {
            self.last_line = Instant::now();
            let pct = if p.head > 0 {
                (p.position as f64 / p.head as f64 * 100.0).min(100.0)
            } else {
                100.0
            };
            eprintln!(
                "replay: {} position {}/{} ({pct:.0}%), {} events read",
                Self::phase_name(p.phase),
                p.position,
                p.head,
                p.events
            );
        }
    }
}

/// Rebuilds the read models with `settings` (the saga's: the views show the Moodle state as the
/// engine sees it: disabled, not linked, pending, in sync, failed).
pub async fn run(
    store: &store::Store,
    settings: SagaSettings,
    args: &ReplayArgs,
) -> anyhow::Result<()> {
    let mut reporter = Reporter::new(args.plain || args.json);
    let options = ReplayOptions {
        page_size: args.page_size.max(1),
        ..ReplayOptions::default()
    };
    let report = views::replay(store, &settings, &options, |p| reporter.report(p))
        .await
        .context("replaying the log into the read models")?;
    let secs = report.elapsed.as_secs_f64();
    let total = report.events + report.caught_up;
    let rate = if secs > 0.0 { total as f64 / secs } else { 0.0 };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "events": report.events,
                "shadow_end": report.shadow_end,
                "caught_up": report.caught_up,
                "elapsed_secs": secs,
                "events_per_sec": rate,
                "moodle_calls": 0,
            })
        );
    } else {
        println!(
            "read models rebuilt: {} events replayed up to position {}, {} more caught up after the swap, in {secs:.1}s ({rate:.0} events/s); no Moodle call made",
            report.events, report.shadow_end, report.caught_up
        );
    }
    Ok(())
}
