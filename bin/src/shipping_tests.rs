//! What ships with the binary, checked against the command line itself: every flag described,
//! the `MOODLE_*` flags only where they mean something (and still accepted where they used to
//! be), the man page and completions, and the packaged env file listing exactly the variables
//! the binary reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::FromArgMatches;

use crate::cli::{self, Cli};
use crate::settings::{Settings, MOODLE};

/// Every subcommand of `cmd`, with its path (`audit verify`), depth first; `help` left out.
fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.clone(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let p = format!("{path} {}", sub.get_name()).trim().to_string();
        walk(sub, p, out);
    }
}

fn tree() -> Vec<(String, clap::Command)> {
    let mut cmd = cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, String::new(), &mut out);
    out
}

fn visible_longs(cmd: &clap::Command) -> BTreeSet<String> {
    cmd.get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

#[test]
fn every_argument_of_every_subcommand_has_a_help_text() {
    let tree = tree();
    assert!(tree.len() > 15, "only {} commands found", tree.len());
    let mut missing = Vec::new();
    for (path, cmd) in &tree {
        if cmd.get_about().is_none() && !path.is_empty() {
            missing.push(format!("the subcommand `{path}`"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("`{path}` {id}"));
            }
        }
    }
    assert!(missing.is_empty(), "no help text: {missing:?}");
}

#[test]
fn moodle_flags_show_only_where_they_mean_something() {
    let tree = tree();
    let moodle_flags: BTreeSet<String> = MOODLE
        .iter()
        .map(|m| crate::settings::flag_of(m.var))
        .collect();
    for (path, cmd) in &tree {
        let shown = visible_longs(cmd);
        let uses = cli::MOODLE_COMMANDS.iter().any(|p| p.join(" ") == *path);
        let shown_moodle: BTreeSet<_> = shown.intersection(&moodle_flags).cloned().collect();
        if uses {
            assert_eq!(
                shown_moodle, moodle_flags,
                "`{path}` lacks some --moodle-* flags"
            );
        } else {
            assert!(shown_moodle.is_empty(), "`{path}` shows {shown_moodle:?}");
        }
        assert!(
            !shown.contains("moodle"),
            "`{path}` shows the legacy --moodle"
        );
        // Meaningful almost everywhere: global, but not shown where it means nothing.
        let own_state = path == "demo" || path == "moodle-sim";
        assert_eq!(
            shown.contains("database-url"),
            !own_state,
            "`{path}`: --database-url shown wrongly"
        );
    }
    // The top help lists every setting, with its help line.
    let help = cli::command().render_help().to_string();
    for m in MOODLE {
        assert!(help.contains(m.var), "top help lacks {}:\n{help}", m.var);
    }
    let serve = cli::command()
        .find_subcommand_mut("serve")
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default();
    assert!(serve.contains("--moodle-reconcile-interval"), "{serve}");
    assert!(serve.contains("[env: MOODLE_TIMEOUT_SECS="), "{serve}");
}

fn settings_of(args: &[&str]) -> anyhow::Result<Settings> {
    let argv = std::iter::once("openvle-moodle").chain(args.iter().copied());
    let matches = cli::command().try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Settings::from_matches(&cli.global, &matches)
}

#[test]
fn moodle_flags_work_before_and_after_the_subcommand() {
    // The older place, before the subcommand (README, tests/), for every subcommand.
    let s = settings_of(&["--moodle-student-role-id", "7", "status"]).unwrap();
    assert_eq!(s.moodle.student_role_id, 7);
    let s = settings_of(&["--moodle", "MOODLE_STUDENT_ROLE_ID=8", "migrate"]).unwrap();
    assert_eq!(s.moodle.student_role_id, 8);
    // On the subcommands that show them.
    let s = settings_of(&["serve", "--moodle-student-role-id", "9"]).unwrap();
    assert_eq!(s.moodle.student_role_id, 9);
    let s = settings_of(&["moodle", "check", "--moodle-instructor-role-id=4"]).unwrap();
    assert_eq!(s.moodle.instructor_role_id, 4);
    // The older form after the subcommand, as tests/src/drive.rs starts `serve`.
    let s = settings_of(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--moodle",
        "MOODLE_STUDENT_ROLE_ID=3",
    ])
    .unwrap();
    assert_eq!(s.moodle.student_role_id, 3);
    // Both places at once: each setting from where it was given; the subcommand's wins.
    let s = settings_of(&[
        "--moodle-instructor-role-id=6",
        "--moodle-student-role-id=1",
        "worker",
        "--moodle-student-role-id=2",
    ])
    .unwrap();
    assert_eq!(
        (s.moodle.instructor_role_id, s.moodle.student_role_id),
        (6, 2)
    );
    // Elsewhere they are hidden, yet still accepted after the subcommand as when they were
    // global everywhere: no command line that worked stops working.
    let s = settings_of(&["audit", "verify", "--moodle-student-role-id=2"]).unwrap();
    assert_eq!(s.moodle.student_role_id, 2);
    let e = settings_of(&["serve", "--moodle-student-role-id=x"]).unwrap_err();
    assert!(format!("{e:#}").contains("MOODLE_STUDENT_ROLE_ID"), "{e:#}");
}

#[test]
fn the_man_page_names_every_subcommand_and_completions_exist_for_each_shell() {
    let mut man = Vec::new();
    crate::cmd::generate::render_man(&mut man).unwrap();
    let man = String::from_utf8(man).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    let top = cli::command();
    let subs: Vec<&str> = top
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name())
        .collect();
    assert!(subs.len() >= 11, "{subs:?}");
    for sub in &subs {
        // roff escapes a dash as `\-`.
        let name = sub.replace('-', "\\-");
        assert!(man.contains(&name), "the man page lacks `{sub}`");
    }
    assert!(
        man.contains("MOODLE_RECONCILE_INTERVAL"),
        "no settings in the man page"
    );
    for (shell, marker) in [
        (clap_complete::Shell::Bash, "complete -F"),
        (clap_complete::Shell::Zsh, "#compdef openvle-moodle"),
        (clap_complete::Shell::Fish, "complete -c openvle-moodle"),
    ] {
        let mut out = Vec::new();
        crate::cmd::generate::render_completions(shell, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        for sub in ["serve", "reconcile", "moodle-sim"] {
            assert!(text.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(text.contains("moodle-reconcile-interval"), "{shell}");
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A source file without its `#[cfg(test)]` part.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `"NAME"` literals after `pattern` in `code`: `env::var("HOSTNAME")`, `get("MOODLE_URL")`.
fn literals_after(code: &str, pattern: &str) -> Vec<String> {
    code.match_indices(pattern)
        .filter_map(|(at, _)| {
            let rest = &code[at + pattern.len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            ok.then_some(name)
        })
        .collect()
}

/// Every variable the binary reads, from the code: clap's `env` of every argument, the
/// `VAR_FILE` secrets, the variables read directly (`std::env::var("…")`) by the binary and the
/// adapters it links, and the `MOODLE_*` names the Moodle and reconcile parsers read.
fn variables_read() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for (_, cmd) in tree() {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                vars.insert(env.to_string_lossy().into_owned());
            }
        }
    }
    for v in crate::secrets::FILE_VARS {
        vars.insert(format!("{v}_FILE"));
    }
    let mut files = Vec::new();
    rust_files(&repo().join("bin/src"), &mut files);
    rust_files(&repo().join("adapters"), &mut files);
    let mut parsed = BTreeSet::new();
    for f in files.iter().filter(|f| {
        let s = f.to_string_lossy();
        s.contains("/src/") && !s.ends_with("/testing.rs") && !s.ends_with("shipping_tests.rs")
    }) {
        let code = code_of(f);
        vars.extend(literals_after(&code, "env::var(\""));
        vars.extend(literals_after(&code, "env::var_os(\""));
        if f.ends_with("adapters/moodle/src/config.rs") || f.ends_with("reconcile/schedule.rs") {
            parsed.extend(literals_after(&code, "\"MOODLE_"));
        }
    }
    assert!(
        parsed.len() > 15,
        "the Moodle parsers' names were not found: {parsed:?}"
    );
    for p in &parsed {
        let var = format!("MOODLE_{p}");
        assert!(
            MOODLE.iter().any(|m| m.var == var),
            "{var} is parsed but not in settings::MOODLE (so no flag, no help, no --moodle key)"
        );
    }
    vars
}

/// The variables of the env file (`#VAR=default` or `VAR=value`), each after a description.
fn env_file_variables(text: &str) -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let mut previous = "";
    for line in text.lines() {
        let body = line.strip_prefix('#').unwrap_or(line);
        if let Some((name, _)) = body.split_once('=') {
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                // A description is `# text`; a variable line is `#NAME=` (no space).
                assert!(
                    previous.starts_with("# ") && previous.len() > 12,
                    "{name}: no one-line description above it"
                );
                assert!(vars.insert(name.to_string()), "{name} is listed twice");
            }
        }
        previous = line;
    }
    vars
}

#[test]
fn the_env_file_lists_exactly_the_variables_the_binary_reads() {
    let path = repo().join("packaging/openvle-moodle.env");
    let text = std::fs::read_to_string(&path).unwrap();
    let listed = env_file_variables(&text);
    let read = variables_read();
    for must in [
        "DATABASE_URL",
        "OPENVLE_HTTP_MAX_CONNECTIONS",
        "MOODLE_TOKEN_FILE",
        "HOSTNAME",
        "MOODLE_RECONCILE_APPLY",
    ] {
        assert!(read.contains(must), "the code scan missed {must}: {read:?}");
    }
    let missing: Vec<_> = read.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "read by the binary, missing from {}: {missing:?}",
        path.display()
    );
    let extra: Vec<_> = listed.difference(&read).collect();
    assert!(
        extra.is_empty(),
        "listed in {} but never read: {extra:?}",
        path.display()
    );
    // Nothing is set by the example: every line is a comment.
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "an uncommented line"
    );
}
