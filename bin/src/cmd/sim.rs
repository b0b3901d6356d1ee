//! `openvle-moodle moodle-sim`: the built-in Moodle simulator as its own process.

use crate::cli::SimArgs;

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    for (flag, rate) in [
        ("--transient-error-rate", args.transient_error_rate),
        ("--lose-response-rate", args.lose_response_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            anyhow::bail!("{flag}: expected a share between 0.0 and 1.0, got {rate}");
        }
    }
    let faults = moodle_sim::Faults {
        latency_ms: args.latency_ms,
        duplicate_latency_ms: args.duplicate_latency_ms,
        transient_error_rate: args.transient_error_rate,
        lose_response_rate: args.lose_response_rate,
        ..Default::default()
    };
    let cfg = moodle_sim::SimConfig {
        token: args.token.expose().to_string(),
        seed: args.seed,
        persist_path: args.persist,
        moodle_version: args.moodle_version,
        faults,
        ..Default::default()
    };
    eprintln!(
        "Moodle {} simulator on http://{} (template course {} in category {}, events category {})",
        args.moodle_version,
        args.listen,
        moodle_sim::TEMPLATE_COURSE_ID,
        moodle_sim::TEMPLATES_CATEGORY_ID,
        moodle_sim::EVENTS_CATEGORY_ID
    );
    moodle_sim::serve(args.listen, cfg).await?;
    Ok(())
}
