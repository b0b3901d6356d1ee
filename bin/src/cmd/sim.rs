//! `openvle-moodle moodle-sim`: the built-in Moodle simulator as its own process.

use crate::cli::SimArgs;

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut faults = moodle::sim::Faults::default();
    faults.latency_ms = args.latency_ms;
    faults.duplicate_latency_ms = args.duplicate_latency_ms;
    faults.transient_error_rate = args.transient_error_rate;
    faults.lose_response_rate = args.lose_response_rate;
    let cfg = moodle::sim::SimConfig {
        token: args.token,
        seed: args.seed,
        persist_path: args.persist,
        faults,
        ..Default::default()
    };
    eprintln!(
        "Moodle simulator on http://{} (template course {} in category {}, events category {})",
        args.listen,
        moodle::sim::TEMPLATE_COURSE_ID,
        moodle::sim::TEMPLATES_CATEGORY_ID,
        moodle::sim::EVENTS_CATEGORY_ID
    );
    moodle::sim::serve(args.listen, cfg).await?;
    Ok(())
}
