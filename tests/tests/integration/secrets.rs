//! Secrets at start-up, through the real binary: a token with a trailing newline and one token
//! for both roles are refused, naming the variables; `VAR_FILE` works and may not be combined
//! with the variable; a token on the command line is warned about; no output shows a token.

use std::path::Path;
use std::time::Duration;

use support::binary::{free_port, Proc};

const WRITER: &str = "writer-f1le-token-6b1e0c47d2a9";
const AUDITOR: &str = "auditor-flag-token-93c5e8a1f7";

fn serve(dir: &Path, port: u16, extra: &[&str]) -> Proc {
    let db = format!("sqlite://{}", dir.join("s.db").display());
    let mut args: Vec<String> = ["--database-url", &db, "serve", "--listen"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(format!("127.0.0.1:{port}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::new(args, dir.join("engine.log"))
        .env("OPENVLE_LOG", "warn")
        .env("MOODLE_ENABLED", "false")
}

/// Runs `proc`'s command line once (it must refuse to start) and returns its stderr.
fn refused(proc: &Proc, args: &[String], secrets: &[&str]) -> String {
    let (status, stdout, stderr) = proc.run_once(args);
    assert!(!status.success(), "started: {stdout}{stderr}");
    for s in secrets {
        assert!(
            !stdout.contains(s) && !stderr.contains(s),
            "{stdout}{stderr}"
        );
    }
    stderr
}

fn serve_args(dir: &Path) -> Vec<String> {
    let db = format!("sqlite://{}", dir.join("s.db").display());
    ["--database-url", &db, "serve", "--listen", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn a_token_with_a_trailing_newline_is_refused_naming_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let args = serve_args(dir.path());
    let p = serve(dir.path(), 0, &[]).env("OPENVLE_API_TOKEN", &format!("{WRITER}\n"));
    let err = refused(&p, &args, &[WRITER]);
    assert!(
        err.contains("OPENVLE_API_TOKEN: the value has surrounding whitespace"),
        "{err}"
    );
    let p = serve(dir.path(), 0, &[])
        .env("MOODLE_TOKEN", &format!(" {WRITER}"))
        .env("MOODLE_ENABLED", "false");
    let err = refused(&p, &args, &[WRITER]);
    assert!(
        err.contains("MOODLE_TOKEN: the value has surrounding whitespace"),
        "{err}"
    );
}

#[test]
fn one_token_for_writer_and_auditor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = serve(dir.path(), 0, &[])
        .env("OPENVLE_API_TOKEN", WRITER)
        .env("OPENVLE_AUDIT_TOKEN", WRITER);
    let err = refused(&p, &serve_args(dir.path()), &[WRITER]);
    assert!(
        err.contains("OPENVLE_API_TOKEN and OPENVLE_AUDIT_TOKEN are the same value"),
        "{err}"
    );
}

#[test]
fn a_variable_and_its_file_both_set_or_an_unreadable_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("writer");
    std::fs::write(&file, format!("{WRITER}\n")).unwrap();
    let p = serve(dir.path(), 0, &[])
        .env("OPENVLE_API_TOKEN", WRITER)
        .env("OPENVLE_API_TOKEN_FILE", file.to_str().unwrap());
    let err = refused(&p, &serve_args(dir.path()), &[WRITER]);
    assert!(
        err.contains("OPENVLE_API_TOKEN and OPENVLE_API_TOKEN_FILE are both set"),
        "{err}"
    );
    let missing = dir.path().join("missing");
    let p = serve(dir.path(), 0, &[]).env("DATABASE_URL_FILE", missing.to_str().unwrap());
    let err = refused(&p, &serve_args(dir.path())[2..], &[]);
    assert!(
        err.contains(&format!(
            "DATABASE_URL_FILE: cannot read {}",
            missing.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_token_file_works_and_a_token_on_the_command_line_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("writer");
    std::fs::write(&file, format!("{WRITER}\n")).unwrap();
    let port = free_port();
    let mut p = serve(dir.path(), port, &["--audit-token", AUDITOR])
        .env("OPENVLE_API_TOKEN_FILE", file.to_str().unwrap());
    p.start();
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/events/no-such-event");
    let mut answered = None;
    for _ in 0..200 {
        if let Ok(r) = http.get(&url).bearer_auth(WRITER).send().await {
            answered = Some(r.status());
            break;
        }
        assert!(p.is_running(), "serve stopped: {}", p.log_tail(40));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Authenticated (not 401): the file's newline was removed.
    let answered = answered.expect("serve answered");
    assert_ne!(
        answered,
        reqwest::StatusCode::UNAUTHORIZED,
        "{}",
        p.log_tail(40)
    );
    let auditor = http.get(&url).bearer_auth(AUDITOR).send().await.unwrap();
    assert_eq!(auditor.status(), answered);
    let nobody = http.get(&url).send().await.unwrap();
    assert_eq!(nobody.status(), reqwest::StatusCode::UNAUTHORIZED);
    p.kill();
    let log = p.log_tail(200);
    assert!(
        log.contains("--audit-token was given on the command line"),
        "{log}"
    );
    assert!(!log.contains("--api-token was given"), "{log}");
    assert!(!log.contains(WRITER) && !log.contains(AUDITOR), "{log}");

    // The Moodle token on the command line, either form, and a short one.
    let db = format!("sqlite://{}", dir.path().join("s.db").display());
    for (flag, value) in [
        ("--moodle-token", "short"),
        ("--moodle", "MOODLE_TOKEN=short"),
    ] {
        let args: Vec<String> = ["--database-url", &db, flag, value, "status"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (_, stdout, stderr) = p.run_once(&args);
        let expected = if flag == "--moodle" {
            "--moodle MOODLE_TOKEN=… was given on the command line"
        } else {
            "--moodle-token was given on the command line"
        };
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains("MOODLE_TOKEN is shorter than 16 characters"),
            "{stderr}"
        );
        assert!(
            !stdout.contains("short") && !stderr.contains("=short"),
            "{stdout}{stderr}"
        );
    }
}
