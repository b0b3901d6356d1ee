//! Issue 5: replay of N events on SQLite and PostgreSQL, events/s beside the raw speed of reading
//! and decoding the same rows, and the peak memory. Each measurement runs in a child process
//! (`bench --only replay-child`) so each gets its own VmHWM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use domain::environment::Environment;
use domain::event::VleEvent;
use domain::moodle_sync::MoodleSync;
use projections::saga::SagaSettings;
use serde::{Deserialize, Serialize};
use store::Store;

use crate::db::{BenchDb, Kind};
use crate::report::{Section, Table};
use crate::stats::{mib, peak_rss_bytes, per_sec, rate, ratio, thousands};
use crate::Opts;

const CHILD_TAG: &str = "BENCH-CHILD ";

/// What a child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChildFigures {
    events: u64,
    secs: f64,
    /// VmHWM after connecting, before the work.
    base_rss: u64,
    /// VmHWM at the end.
    peak_rss: u64,
}

pub async fn run(opts: &Opts) -> Section {
    let n = opts
        .replay_events
        .unwrap_or(if opts.quick { 20_000 } else { 1_000_000 });
    let limit = Duration::from_secs(if opts.quick { 300 } else { 1800 });
    let mut s = Section::new("4. Replay (issue 5)");
    s.line(format!(
        "A log of {} events (`crate::seed::seed_events`: realistic lives of OpenVLE events, 18 events \
         each — deploy, course duplicated, users linked and enrolled, an addition after a \
         transient failure, a removal, the end — interleaved 32 at a time) is written straight \
         into a fresh database. Then two child processes run against it, one after the other: \
         *raw* pages through the log in position order (2,000 rows a page, as replay does) and \
         decodes every payload into its domain type; *replay* is `views::replay` (builds every \
         read model aside, swaps it in, catches up). Peak memory is each child's VmHWM; \
         *baseline* is the child's VmHWM after connecting, before any work. Each child is \
         bounded at {} s.\n",
        thousands(n),
        limit.as_secs()
    ));
    let mut table = Table::new(&[
        "store",
        "events",
        "seed",
        "replay events/s",
        "raw read+decode events/s",
        "replay / raw",
        "replay peak memory",
        "raw peak memory",
        "baseline",
    ]);
    for kind in [Kind::Sqlite, Kind::Postgres] {
        eprintln!("   {} with {} events", kind.label(), thousands(n));
        let db = match BenchDb::fresh(kind, &opts.pg).await {
            Ok(db) => db,
            Err(e) => {
                s.unmeasured(format!("replay on {}: {e:#}", kind.label()));
                continue;
            }
        };
        let result = measure(&db, n, limit).await;
        db.remove().await;
        match result {
            Ok(row) => table.row(row),
            Err(e) => s.unmeasured(format!("replay on {}: {e:#}", kind.label())),
        }
    }
    if !table.is_empty() {
        s.line(table.render());
        s.line(
            "`replay / raw` is the replay's speed as a fraction of merely reading and decoding \
             the same rows in the same run (1.00 would mean folding and writing the views is \
             free).\n",
        );
    }
    s
}

async fn measure(db: &BenchDb, n: u64, limit: Duration) -> anyhow::Result<Vec<String>> {
    let store = Store::connect(&db.url).await?;
    let t = Instant::now();
    let seeded = crate::seed::seed_events(&store, n).await;
    let seed_secs = t.elapsed().as_secs_f64();
    store.close().await;
    let seeded = seeded?;
    eprintln!("   seeded {} events in {seed_secs:.1} s", thousands(seeded));
    let raw = spawn_child(&db.url, "raw", limit)
        .await
        .context("raw read")?;
    eprintln!(
        "   raw: {} events in {:.2} s",
        thousands(raw.events),
        raw.secs
    );
    let rep = spawn_child(&db.url, "replay", limit)
        .await
        .context("replay")?;
    eprintln!(
        "   replay: {} events in {:.2} s",
        thousands(rep.events),
        rep.secs
    );
    if rep.events != raw.events {
        eprintln!(
            "   note: replay applied {} events, raw read {}",
            rep.events, raw.events
        );
    }
    let rep_rate = per_sec(rep.events, rep.secs);
    let raw_rate = per_sec(raw.events, raw.secs);
    Ok(vec![
        db.kind.label().to_string(),
        thousands(raw.events),
        format!("{seed_secs:.1} s"),
        format!("{} ({:.1} s)", rate(rep_rate), rep.secs),
        format!("{} ({:.1} s)", rate(raw_rate), raw.secs),
        format!("{:.2}", ratio(rep_rate, raw_rate)),
        mib(rep.peak_rss),
        mib(raw.peak_rss),
        format!("{} / {}", mib(rep.base_rss), mib(raw.base_rss)),
    ])
}

async fn spawn_child(url: &str, mode: &str, limit: Duration) -> anyhow::Result<ChildFigures> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let child = tokio::process::Command::new(exe)
        .args([
            "--only",
            "replay-child",
            "--child-db",
            url,
            "--child-mode",
            mode,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the child")?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("did not finish within {} s", limit.as_secs()))??;
    if !output.status.success() {
        bail!(
            "child failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(CHILD_TAG))
        .context("the child printed no figures")?;
    Ok(serde_json::from_str(line)?)
}

/// The child side: `bench --only replay-child --child-db URL --child-mode raw|replay`.
pub async fn child(opts: &Opts) -> anyhow::Result<()> {
    let url = opts.child_db.as_deref().context("--child-db is required")?;
    let mode = opts.child_mode.as_deref().unwrap_or("replay");
    let store = Store::connect_without_migrating(url).await?;
    store.ping().await?;
    let options = views::ReplayOptions::default();
    let base_rss = peak_rss_bytes();
    let started = Instant::now();
    let events = match mode {
        "raw" => {
            let mut pager = store.pager(0, options.page_size);
            let mut n = 0u64;
            loop {
                let page = pager.next_page().await?;
                if page.is_empty() {
                    break;
                }
                for e in &page {
                    match e.aggregate_type.as_str() {
                        "event" => {
                            std::hint::black_box(e.decode::<VleEvent>()?);
                        }
                        "moodle_sync" => {
                            std::hint::black_box(e.decode::<MoodleSync>()?);
                        }
                        "environment" => {
                            std::hint::black_box(e.decode::<Environment>()?);
                        }
                        other => bail!("unknown aggregate type {other}"),
                    }
                }
                n += page.len() as u64;
            }
            n
        }
        "replay" => {
            let report = views::replay(&store, &SagaSettings::enabled(1), &options, |_| {}).await?;
            report.events + report.caught_up
        }
        other => bail!("--child-mode {other}: expected raw or replay"),
    };
    let secs = started.elapsed().as_secs_f64();
    let figures = ChildFigures {
        events,
        secs,
        base_rss,
        peak_rss: peak_rss_bytes(),
    };
    store.close().await;
    println!("{CHILD_TAG}{}", serde_json::to_string(&figures)?);
    Ok(())
}
