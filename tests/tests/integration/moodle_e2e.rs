//! Every run meets a real Moodle (issue 9): the real `openvle-moodle` binary against the real site
//! of `../shared/moodle-lab`, with Moodle's state read back through Moodle's own web services
//! ([`RealMoodle::snapshot`]), never through the engine's view of itself.
//!
//! - the seed's table on SQLite, deleting courses: a deploy matching accounts that already exist
//!   (one under the same email in another case) and creating the others, instructors and
//!   students, a participant added and one removed, an end, deletions (courses gone), and an
//!   event of an environment without a template (no course, no account);
//! - the same, keeping courses (`MOODLE_DELETE_COURSE_ON_EVENT_DELETE=false`): the course of a
//!   deleted event left as it was, whether it had ended or not;
//! - that setting changed between two runs of the engine on one store, either way: what a
//!   deletion did stays done, the new setting applies to later deletions;
//! - `MOODLE_REMOVAL_MODE=suspend` on PostgreSQL: removed participants and the students of an
//!   ended event keep their enrolment, suspended; instructors stay active; added again, active;
//! - `moodle check`, on the command line and through the API: the lab's service as it is, a
//!   service missing a function, and a wrong token; the token is never printed.
//!
//! The site is shared with other tests running at the same time: every name, email and event id
//! here is the run's own, and nothing is reset. `OPENVLE_E2E_LOG_DIR=<dir>` keeps the engine's
//! logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use moodle::{CourseField, REQUIRED_FUNCTIONS};
use moodle_sim::SimState;
use reqwest::StatusCode;
use serde_json::Value;
use support::binary::{free_port, Proc};
use support::drive::{serve_proc, Http};
use support::lifecycle::{Cmd, Model, Person};
use support::real_moodle::{run_tag, RealMoodle};
use support::scratch_service::ScratchService;

/// The engine's log filter: its Moodle calls are in the log.
const LOG: &str = "info,saga=debug,moodle=debug";

/// One engine process on one store, the model of what it was asked, and the site. With
/// `OPENVLE_E2E_LOG_DIR` set, the engine's log is copied there as `<test>.log` when the run ends
/// (passed or failed).
struct Run {
    name: &'static str,
    site: RealMoodle,
    db_url: String,
    dir: tempfile::TempDir,
    flags: Vec<String>,
    model: Model,
    proc: Mutex<Proc>,
    http: Http,
    started: Instant,
}

impl Run {
    /// The engine on `db_url` (None: a fresh SQLite file), pointed at `site`, with `extra`
    /// `MOODLE_*` settings.
    fn start(name: &'static str, site: &RealMoodle, db_url: Option<String>, extra: &[&str]) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let db_url =
            db_url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("e2e.db").display()));
        let mut flags = site.engine_flags();
        flags.extend(extra.iter().map(|f| f.to_string()));
        let port = free_port();
        let mut proc = serve_proc(&db_url, &flags, port, dir.path()).env("OPENVLE_LOG", LOG);
        proc.start();
        let model = Model {
            category: Some(site.category),
            ..Model::default()
        };
        Run {
            name,
            site: site.clone(),
            db_url,
            dir,
            flags,
            model,
            proc: Mutex::new(proc),
            http: Http::new(port),
            started: Instant::now(),
        }
    }

    /// Stops the engine (SIGTERM, which must exit 0) and starts it again on the same store with
    /// `flag` (`MOODLE_X=value`) in place of the setting of the same name.
    fn restart_with(&mut self, flag: &str) {
        let status = self.proc.lock().unwrap().terminate(Duration::from_secs(60));
        assert!(
            status.success(),
            "SIGTERM exit {status}; log:\n{}",
            self.log_tail(40)
        );
        let key = flag.split_once('=').unwrap().0;
        self.flags.retain(|f| !f.starts_with(&format!("{key}=")));
        self.flags.push(flag.to_string());
        let port = free_port();
        let mut proc =
            serve_proc(&self.db_url, &self.flags, port, self.dir.path()).env("OPENVLE_LOG", LOG);
        proc.start();
        self.proc = Mutex::new(proc);
        self.http = Http::new(port);
    }

    fn log_tail(&self, n: usize) -> String {
        self.proc.lock().unwrap().log_tail(n)
    }

    /// Sends each command (the model must accept it) until it took effect.
    async fn send(&mut self, cmds: &[Cmd]) {
        for c in cmds {
            assert!(self.model.apply(c), "the scenario is valid: {c:?}");
            self.http.ensure(c, &self.proc).await;
        }
    }

    /// Waits for the saga to converge, then checks Moodle against the model; returns Moodle's
    /// state.
    async fn settle(&self, phase: &str) -> SimState {
        let t = Instant::now();
        let (views, pokes) = self.http.converge(&self.model, &self.proc).await;
        let snapshot = self.site.snapshot(&self.model).await;
        if let Err(diff) = self.model.check(&snapshot) {
            panic!(
                "{phase}: Moodle differs from the model:\n{diff}\nviews: {views:#?}\nengine log:\n{}",
                self.log_tail(60)
            );
        }
        // The engine's view names the course Moodle holds.
        support::drive::assert_views_name_moodle_courses(&views, &snapshot);
        println!(
            "{phase}: converged and checked in {:?} ({pokes} retries sent; {:?} since start)",
            t.elapsed(),
            self.started.elapsed()
        );
        snapshot
    }

    /// The engine never wrote the token into its log; its warnings and errors are printed for
    /// the reader (a real Moodle answers some calls with errors the engine recovers from).
    fn finish(&self) {
        let test = self.name;
        let log = std::fs::read_to_string(self.dir.path().join("engine.log")).unwrap();
        assert!(
            !log.contains(&self.site.token),
            "the Moodle token appears in the engine's log"
        );
        let log = strip_ansi(&log);
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        println!(
            "{test}: {:?}, {} warning(s) or error(s) in the engine's log{}{}",
            self.started.elapsed(),
            notable.len(),
            if notable.is_empty() { "" } else { ":\n" },
            notable.join("\n")
        );
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(to) = std::env::var_os("OPENVLE_E2E_LOG_DIR") {
            let to = std::path::Path::new(&to);
            let _ = std::fs::create_dir_all(to);
            let _ = std::fs::copy(
                self.dir.path().join("engine.log"),
                to.join(format!("{}.log", self.name)),
            );
        }
    }
}

/// `text` without its terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Ids of every account whose email is `email`, in any case.
async fn accounts(site: &RealMoodle, email: &str) -> Vec<i64> {
    site.client()
        .get_users(&[("email", email)])
        .await
        .unwrap_or_else(|e| panic!("look up {email}: {e}"))
        .into_iter()
        .filter(|u| u.email.as_deref().map(str::to_lowercase) == Some(email.to_lowercase()))
        .map(|u| u.id)
        .collect()
}

/// The id of `event`'s course in `snapshot`.
fn course_of(snapshot: &SimState, event: &str) -> i64 {
    snapshot
        .courses
        .values()
        .find(|c| support::is_course_of(&c.shortname, &c.idnumber, event))
        .unwrap_or_else(|| panic!("no course for {event}"))
        .id
}

/// Whether a course with this id exists in Moodle (whatever its shortname).
async fn course_exists(site: &RealMoodle, id: i64) -> bool {
    let found = site
        .client()
        .get_courses_by_field(CourseField::Id, &id.to_string())
        .await
        .unwrap_or_else(|e| panic!("look up course {id}: {e}"));
    found.iter().any(|c| c.id == id)
}

/// `id.<tag>@example.org`: a participant of this run (the engine derives the username
/// `id.<tag>` from it).
fn person(tag: &str, id: &str, instructor: bool) -> Person {
    Person::new(id, &format!("{id}.{tag}@example.org"), instructor)
}

fn env(id: &str, template: Option<i64>) -> Cmd {
    Cmd::Environment {
        id: id.into(),
        template,
    }
}

fn deploy(event: &str, env: &str, people: &[&Person]) -> Cmd {
    Cmd::Deploy {
        event: event.into(),
        env: env.into(),
        people: people.iter().map(|p| (*p).clone()).collect(),
    }
}

/// The seed's table on SQLite, with `MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true`: accounts
/// matched (one under its email in another case) or created, instructors and students enrolled,
/// a participant added and one removed, an end, deletions, and an event without a template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn seed_table_against_the_real_moodle_sqlite() {
    let Some(site) = RealMoodle::from_env("seed_table_against_the_real_moodle_sqlite") else {
        return;
    };
    site.wait_until_up().await;
    let tag = run_tag();
    let mut run = Run::start(
        "seed_table_against_the_real_moodle_sqlite",
        &site,
        None,
        &["MOODLE_DELETE_COURSE_ON_EVENT_DELETE=true"],
    );
    let p = |id: &str, instructor: bool| person(&tag, id, instructor);
    let (ins, ins2) = (p("ins", true), p("ins2", true));
    let (s1, ab, s3, s4) = (
        p("s1", false),
        p("ab", false),
        p("s3", false),
        p("s4", false),
    );
    let (s5, s6, s7) = (p("s5", false), p("s6", false), p("s7", false));
    // Already in Moodle: s1 under exactly their email (and a username the engine would not
    // derive), ab under their email in another case with the username the engine would derive
    // (the local part, lowercased). Both must be matched, neither duplicated.
    let s1_id = site.create_user(&format!("pre-s1-{tag}"), &s1.email).await;
    let ab_id = site
        .create_user(&format!("ab.{tag}"), &format!("Ab.{tag}@Example.ORG"))
        .await;
    run.model.preexisting.insert(s1.email.clone());
    run.model.preexisting.insert(ab.email.clone());

    let (a, b, c) = (event_id(), event_id(), event_id());
    run.send(&[
        env("lab", Some(site.template)),
        env("plain", None),
        deploy(&a, "lab", &[&ins, &s1, &ab, &s3, &s4]),
        deploy(&b, "lab", &[&ins2, &s3, &s5]),
        deploy(&c, "plain", &[&ins, &s6]),
    ])
    .await;
    let deployed = run.settle("deployed").await;
    let (course_a, course_b) = (course_of(&deployed, &a), course_of(&deployed, &b));
    let enrolled_in_a = &deployed.enrolments[&course_a];
    for (who, id) in [("s1", s1_id), ("ab", ab_id)] {
        assert!(
            enrolled_in_a.contains_key(&id),
            "the account made beforehand for {who} ({id}) is the one enrolled: {enrolled_in_a:?}"
        );
    }
    assert_eq!(accounts(&site, &ab.email).await, vec![ab_id]);
    assert_eq!(accounts(&site, &s1.email).await, vec![s1_id]);
    // s3 is in two events and has one account, enrolled in both.
    let s3_ids = accounts(&site, &s3.email).await;
    assert_eq!(s3_ids.len(), 1, "one account for s3: {s3_ids:?}");
    assert!(deployed.enrolments[&course_b].contains_key(&s3_ids[0]));

    run.send(&[
        Cmd::Add {
            event: a.clone(),
            person: s7.clone(),
        },
        Cmd::Add {
            event: b.clone(),
            person: s1.clone(),
        },
        Cmd::Remove {
            event: a.clone(),
            participant: s4.id.clone(),
        },
    ])
    .await;
    let changed = run.settle("added and removed").await;
    assert!(changed.enrolments[&course_b].contains_key(&s1_id));
    assert_eq!(
        accounts(&site, &s4.email).await.len(),
        1,
        "a removed participant keeps their account"
    );

    run.send(&[Cmd::End { event: a.clone() }, Cmd::End { event: c.clone() }])
        .await;
    run.settle("ended").await;

    run.send(&[
        Cmd::Delete { event: a.clone() },
        Cmd::Delete { event: b.clone() },
        Cmd::Delete { event: c.clone() },
    ])
    .await;
    run.settle("deleted").await;
    for course in [course_a, course_b] {
        assert!(
            !course_exists(&site, course).await,
            "the course {course} of a deleted event is gone from Moodle"
        );
    }
    assert!(
        accounts(&site, &s6.email).await.is_empty(),
        "a participant of an event without a template gets no Moodle account"
    );
    run.finish();
}

/// `MOODLE_DELETE_COURSE_ON_EVENT_DELETE=false` (the default), on SQLite: a deleted event's
/// course is kept, as an ended event's (hidden, instructors only), whether the event had ended
/// before or was still running (then it is ended: nobody keeps access to a course whose event
/// is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn deletion_leaves_the_course_against_the_real_moodle_sqlite() {
    let name = "deletion_leaves_the_course_against_the_real_moodle_sqlite";
    let Some(site) = RealMoodle::from_env(name) else {
        return;
    };
    site.wait_until_up().await;
    let tag = run_tag();
    let mut run = Run::start(
        name,
        &site,
        None,
        &["MOODLE_DELETE_COURSE_ON_EVENT_DELETE=false"],
    );
    run.model.keep_course_on_delete = true;
    let p = |id: &str, instructor: bool| person(&tag, id, instructor);
    let (ins, s1, s2) = (p("ins", true), p("s1", false), p("s2", false));
    let (ended, running) = (event_id(), event_id());
    run.send(&[
        env("lab", Some(site.template)),
        deploy(&ended, "lab", &[&ins, &s1]),
        deploy(&running, "lab", &[&ins, &s2]),
        Cmd::End {
            event: ended.clone(),
        },
    ])
    .await;
    let before = run.settle("deployed, one ended").await;
    run.send(&[
        Cmd::Delete {
            event: ended.clone(),
        },
        Cmd::Delete {
            event: running.clone(),
        },
    ])
    .await;
    let after = run.settle("deleted, courses kept").await;
    for e in [&ended, &running] {
        assert_eq!(
            course_of(&after, e),
            course_of(&before, e),
            "the same course"
        );
    }
    run.finish();
}

/// The deletion setting changed between two runs of the engine on the same store: the
/// deletions already carried out stay as they were, the new setting applies to the deletions
/// that follow. From `true` to `false`: a course deleted stays deleted, and its event in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn deletion_setting_turned_off_against_the_real_moodle_sqlite() {
    let name = "deletion_setting_turned_off_against_the_real_moodle_sqlite";
    changing_the_deletion_setting(name, true).await;
}

/// From `false` to `true`: a course kept stays (it is not deleted after the fact).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn deletion_setting_turned_on_against_the_real_moodle_sqlite() {
    let name = "deletion_setting_turned_on_against_the_real_moodle_sqlite";
    changing_the_deletion_setting(name, false).await;
}

/// Two events deployed and ended (so that a course kept is the same under every reading of the
/// table); the first deleted with `MOODLE_DELETE_COURSE_ON_EVENT_DELETE=<first>`, then the
/// engine restarted with the opposite setting and the second deleted.
async fn changing_the_deletion_setting(name: &'static str, first: bool) {
    let Some(site) = RealMoodle::from_env(name) else {
        return;
    };
    site.wait_until_up().await;
    let tag = run_tag();
    let setting = |delete: bool| format!("MOODLE_DELETE_COURSE_ON_EVENT_DELETE={delete}");
    let mut run = Run::start(name, &site, None, &[&setting(first)]);
    run.model.keep_course_on_delete = !first;
    let p = |id: &str, instructor: bool| person(&tag, id, instructor);
    let (ins, s1) = (p("ins", true), p("s1", false));
    let (x, y) = (event_id(), event_id());
    run.send(&[
        env("lab", Some(site.template)),
        deploy(&x, "lab", &[&ins, &s1]),
        deploy(&y, "lab", &[&ins, &s1]),
    ])
    .await;
    let deployed = run.settle("deployed").await;
    let course_x = course_of(&deployed, &x);
    run.send(&[
        Cmd::End { event: x.clone() },
        Cmd::End { event: y.clone() },
        Cmd::Delete { event: x.clone() },
    ])
    .await;
    run.settle(&format!("x deleted with the setting {first}"))
        .await;
    assert_eq!(course_exists(&site, course_x).await, !first);

    run.restart_with(&setting(!first));
    run.model.keep_course_on_delete = first;
    run.send(&[Cmd::Delete { event: y.clone() }]).await;
    run.settle(&format!("restarted with the setting {}: y deleted", !first))
        .await;
    assert_eq!(
        course_exists(&site, course_x).await,
        !first,
        "x's course is as its deletion left it"
    );
    run.finish();
}

/// `MOODLE_REMOVAL_MODE=suspend`, on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn suspend_mode_against_the_real_moodle_postgres() {
    let Some(site) = RealMoodle::from_env("suspend_mode_against_the_real_moodle_postgres") else {
        return;
    };
    site.wait_until_up().await;
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    let tag = run_tag();
    let mut run = Run::start(
        "suspend_mode_against_the_real_moodle_postgres",
        &site,
        Some(db.url.clone()),
        &["MOODLE_REMOVAL_MODE=suspend"],
    );
    run.model.removal_suspends = true;
    let p = |id: &str, instructor: bool| person(&tag, id, instructor);
    let (ins, ins2) = (p("ins", true), p("ins2", true));
    let (s1, s2, s3) = (p("s1", false), p("s2", false), p("s3", false));
    let e = event_id();
    run.send(&[
        env("lab", Some(site.template)),
        deploy(&e, "lab", &[&ins, &ins2, &s1, &s2, &s3]),
    ])
    .await;
    run.settle("deployed").await;

    let remove = |p: &Person| Cmd::Remove {
        event: e.clone(),
        participant: p.id.clone(),
    };
    run.send(&[remove(&s1), remove(&s2), remove(&ins2)]).await;
    run.settle("removed (suspended)").await;

    run.send(&[Cmd::Add {
        event: e.clone(),
        person: s2.clone(),
    }])
    .await;
    run.settle("added again (active)").await;

    run.send(&[Cmd::End { event: e.clone() }]).await;
    let ended = run.settle("ended (students suspended)").await;
    // Spelled out once more for the reader: who is enrolled how at the end.
    let course = course_of(&ended, &e);
    let state = |p: &Person| {
        let id = ended
            .users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(&p.email))
            .unwrap_or_else(|| panic!("no account for {}", p.email))
            .id;
        ended.enrolments[&course]
            .get(&id)
            .map(|en| (en.roles.clone(), en.suspended))
    };
    assert_eq!(state(&ins), Some((vec![3], false)));
    assert_eq!(state(&ins2), Some((vec![3], true)));
    for s in [&s1, &s2, &s3] {
        assert_eq!(state(s), Some((vec![5], true)), "{}", s.email);
    }
    run.finish();
}

/// `openvle-moodle moodle check [--json]` against the site with `token`.
fn cli_check(site: &RealMoodle, token: &str, json: bool) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::new(Vec::new(), dir.path().join("check.log"));
    let mut args: Vec<String> = [
        "MOODLE_ENABLED=true".to_string(),
        format!("MOODLE_URL={}", site.url),
        format!("MOODLE_TOKEN={token}"),
        "MOODLE_ALLOW_INSECURE_HTTP=true".to_string(),
        // Required whenever MOODLE_ENABLED is true, even for the check (it does not use it).
        format!("MOODLE_COURSE_CATEGORY_ID={}", site.category),
    ]
    .into_iter()
    .flat_map(|m| ["--moodle".to_string(), m])
    .collect();
    args.extend(["moodle".into(), "check".into()]);
    if json {
        args.push("--json".into());
    }
    let (status, out, err) = proc.run_once(&args);
    for text in [&out, &err] {
        assert!(
            !text.contains(token),
            "moodle check printed the token:\n{out}\n{err}"
        );
    }
    (status.code().unwrap_or(-1), out, err)
}

/// `GET /api/v1/moodle/check` of an engine configured with `token`.
async fn api_check(site: &RealMoodle, token: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("check.db").display());
    let mut flags = site.engine_flags();
    flags.retain(|f| !f.starts_with("MOODLE_TOKEN="));
    flags.push(format!("MOODLE_TOKEN={token}"));
    let port = free_port();
    let mut proc = serve_proc(&db_url, &flags, port, dir.path());
    proc.start();
    let http = Http::new(port);
    let started = Instant::now();
    let (status, body) = loop {
        if let Some(answer) = http.get("/api/v1/moodle/check").await {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60) && proc.is_running(),
            "the engine never answered; log:\n{}",
            proc.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body.to_string().contains(token),
        "the API's check shows the token: {body}"
    );
    body
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `moodle check` on the real site: as it is, without a function, and with a wrong token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow suite: run with --features openvle-tests/slow, as .ci/run does"
)]
async fn moodle_check_against_the_real_moodle() {
    let Some(site) = RealMoodle::from_env("moodle_check_against_the_real_moodle") else {
        return;
    };
    site.wait_until_up().await;
    support::binary::binary(); // built before the clock starts
    let started = Instant::now();
    let required: Vec<String> = REQUIRED_FUNCTIONS.iter().map(|f| f.to_string()).collect();

    // The lab's service holds every function.
    let (code, out, err) = cli_check(&site, &site.token, false);
    assert_eq!(code, 0, "moodle check on the lab's service:\n{out}\n{err}");
    assert!(out.contains("Moodle check: OK"), "{out}");
    for f in &required {
        assert!(
            out.contains(&format!("found:   {f}\n")),
            "{f} not found:\n{out}"
        );
    }
    assert!(!out.contains("missing:"), "{out}");
    let (code, out, err) = cli_check(&site, &site.token, true);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["token_valid"], true, "{report}");
    assert_eq!(strings(&report["functions_found"]), required, "{report}");
    assert!(strings(&report["functions_missing"]).is_empty(), "{report}");
    assert!(
        report["release"]
            .as_str()
            .is_some_and(|r| r.starts_with("4.4")),
        "{report}"
    );

    // A service without core_user_get_users.
    let scratch = ScratchService::without(&site, &["core_user_get_users"]).await;
    let (code, out, err) = cli_check(&site, &scratch.token, false);
    let (json_code, json_out, json_err) = cli_check(&site, &scratch.token, true);
    let api_ok = api_check(&site, &site.token).await;
    let api_missing = api_check(&site, &scratch.token).await;
    scratch.remove().await;
    assert_eq!(code, 2, "a function is missing:\n{out}\n{err}");
    assert!(out.contains("PROBLEMS FOUND"), "{out}");
    assert!(
        out.contains("missing: core_user_get_users\n"),
        "the missing function is named:\n{out}"
    );
    assert_eq!(out.matches("missing: ").count(), 1, "{out}");
    assert!(
        out.contains("found:   core_user_get_users_by_field\n"),
        "{out}"
    );
    assert_eq!(json_code, 2, "{json_out}\n{json_err}");
    let report: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["token_valid"], true, "{report}");
    assert_eq!(
        strings(&report["functions_missing"]),
        ["core_user_get_users"],
        "{report}"
    );
    let problems = report["problems"].to_string();
    assert!(problems.contains("core_user_get_users"), "{report}");

    // The same through the API.
    assert_eq!(api_ok["ok"], true, "{api_ok}");
    assert_eq!(strings(&api_ok["functions_found"]), required, "{api_ok}");
    assert_eq!(api_missing["ok"], false, "{api_missing}");
    assert_eq!(
        strings(&api_missing["functions_missing"]),
        ["core_user_get_users"],
        "{api_missing}"
    );

    // A token Moodle does not know.
    let wrong = format!("{:032x}", rand::random::<u128>());
    let (code, out, err) = cli_check(&site, &wrong, true);
    assert_eq!(code, 2, "a wrong token:\n{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["reachable"], true, "{report}");
    assert_eq!(report["token_valid"], false, "{report}");
    assert_eq!(report["ok"], false, "{report}");
    println!(
        "moodle_check_against_the_real_moodle: {:?}",
        started.elapsed()
    );
}
