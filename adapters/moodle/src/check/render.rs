//! The text rendering of a [`CheckReport`] for `openvle-moodle moodle check`.

use std::fmt::Write;

use super::{CheckReport, Finding, ProbeReport, Status, REQUIRED_FUNCTIONS};

fn tag(s: Status) -> &'static str {
    match s {
        Status::Ok => "[ok]     ",
        Status::Warning => "[WARNING]",
        Status::Problem => "[PROBLEM]",
        Status::Skipped => "[skipped]",
    }
}

fn finding(s: &mut String, indent: &str, f: &Finding, extra: &str) {
    let _ = writeln!(
        s,
        "{indent}{} {}{extra}: {}",
        tag(f.status),
        f.name,
        f.detail
    );
    if let Some(fix) = &f.fix {
        if f.status != Status::Ok {
            let _ = writeln!(s, "{indent}          fix: {fix}");
        }
    }
}

impl CheckReport {
    /// A human-readable report for the CLI: the summary, the functions, then every finding
    /// with its fix, and the probe's steps when it ran.
    pub fn render_text(&self) -> String {
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Moodle check: {}",
            if self.ok { "OK" } else { "PROBLEMS FOUND" }
        );
        let _ = writeln!(s, "  reachable:   {}", yes(self.reachable));
        let _ = writeln!(s, "  token valid: {}", yes(self.token_valid));
        if let Some(n) = &self.sitename {
            let _ = writeln!(s, "  site:        {n}");
        }
        if let Some(rel) = &self.release {
            let _ = writeln!(
                s,
                "  release:     {rel} (version {})",
                self.version.as_deref().unwrap_or("?")
            );
        }
        if self.token_valid {
            let _ = writeln!(
                s,
                "  functions:   {}/{} present",
                self.functions_found.len(),
                REQUIRED_FUNCTIONS.len()
            );
            for f in &self.functions_found {
                let _ = writeln!(s, "    found:   {f}");
            }
            for f in &self.functions_missing {
                let _ = writeln!(s, "    missing: {f}");
            }
        }
        let count = |st: Status| self.checks.iter().filter(|c| c.status == st).count();
        let _ = writeln!(
            s,
            "  checks:      {} ok, {} warning(s), {} problem(s), {} skipped",
            count(Status::Ok),
            count(Status::Warning),
            count(Status::Problem),
            count(Status::Skipped)
        );
        for f in &self.checks {
            finding(&mut s, "    ", f, "");
        }
        if let Some(p) = &self.probe {
            p.render_into(&mut s);
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {n}");
        }
        s
    }
}

impl ProbeReport {
    fn render_into(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  probe:       {}{}",
            if self.ok { "OK" } else { "PROBLEMS FOUND" },
            if self.cleaned_up {
                ", nothing left behind"
            } else {
                ", SOMETHING WAS LEFT BEHIND"
            }
        );
        for step in &self.steps {
            let f = Finding {
                name: step.name,
                status: step.status,
                detail: step.detail.clone(),
                fix: step.fix.clone(),
            };
            finding(s, "    ", &f, &format!(" ({} ms)", step.duration_ms));
        }
        for left in &self.left_behind {
            let _ = writeln!(s, "    left behind: {left}");
        }
    }
}
