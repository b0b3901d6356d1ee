//! `moodle check` and `moodle check --probe` against the real Moodle, each mistake an
//! administrator makes made there for real: a function removed from the service (a scratch
//! service), a category that does not exist, a template without a manual enrolment method (a
//! scratch copy whose instance is disabled or deleted in the lab's database), a token of the
//! site administrator (a scratch token for `admin`), an auth plugin that is not enabled; and the
//! probe on the healthy lab, through the API and the binary, leaving nothing behind (read back
//! through Moodle's own web services), also when it fails midway.
//!
//! Where the words and the real Moodle disagree, the real Moodle wins, and the test
//! shows what it does: `core_enrol_get_course_enrolment_methods` never lists a manual instance
//! (the check reads the course's `enrollmentmethods`); a duplicate gets the site's default
//! enrolment methods, not its template's, so a template without manual enrolment is a warning
//! and its probe enrols; a disabled auth plugin cannot be seen, and Moodle creates its accounts.
//!
//! Everything here works with names of its own (a random suffix) and removes what it made: the
//! lab is shared. Without the lab these tests say so and pass, unless
//! `OPENVLE_REQUIRE_MOODLE=1`, which makes its absence a failure; the API's parameter rules are
//! checked on the simulator always.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use moodle::{
    check_and_probe, check_with, CheckReport, CourseField, DuplicateCourse, Finding, MoodleClient,
    MoodleSettings, NewUser, ProbeOptions, ProbeReport, Status, Target, UserField,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgPool;
use support::binary::Proc;
use support::real_moodle::{client_for, run_tag, RealMoodle};
use support::scratch_service::ScratchService;
use support::{ApiConfig, Backend, TestApp, Token};

const WRITER: &str = "writer-token-preflight-0123";
const AUDITOR: &str = "auditor-token-preflight-0123";

fn settings(site: &RealMoodle) -> MoodleSettings {
    MoodleSettings {
        enabled: true,
        url: Some(site.url.clone()),
        allow_insecure_http: true,
        course_category_id: Some(site.category),
        ..MoodleSettings::default()
    }
}

fn linked(template: i64) -> Vec<(String, Target)> {
    vec![(
        "environment preflight moodle_template_course_id".to_string(),
        Target::TemplateCourse(template),
    )]
}

fn with_name<'a>(r: &'a CheckReport, name: &str) -> Vec<&'a Finding> {
    r.checks.iter().filter(|c| c.name == name).collect()
}

async fn lab_db() -> PgPool {
    let url = std::env::var("MOODLE_TEST_DB_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/moodle".into());
    PgPool::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("the lab's database at {url}: {e}"))
}

/// Whether Moodle still has the probe's scratch course (by shortname, and by id when Moodle
/// made it) or account (by username and email), asked through its web services with the lab's
/// own token.
async fn assert_nothing_left(site: &RealMoodle, shortname: &str, course_id: Option<i64>) {
    let c = site.client();
    let courses = c
        .get_courses_by_field(CourseField::Shortname, shortname)
        .await
        .unwrap();
    assert!(
        courses.is_empty(),
        "the scratch course is left: {courses:?}"
    );
    if let Some(id) = course_id {
        let found = c
            .get_courses_by_field(CourseField::Id, &id.to_string())
            .await
            .unwrap();
        assert!(found.is_empty(), "course {id} is left: {found:?}");
    }
    let tag = shortname.trim_start_matches("OVLE-PROBE-").to_lowercase();
    let username = format!("ovle.probe.{tag}");
    let users = c
        .get_users_by_field(UserField::Username, std::slice::from_ref(&username))
        .await
        .unwrap();
    assert!(users.is_empty(), "the probe account is left: {users:?}");
    let by_email = c
        .get_users(&[("email", &format!("{username}@example.invalid"))])
        .await
        .unwrap();
    assert!(by_email.is_empty(), "{by_email:?}");
}

async fn assert_probe_left_nothing(site: &RealMoodle, p: &ProbeReport) {
    let shortname = p.scratch_shortname.as_deref().expect("a scratch shortname");
    assert_nothing_left(site, shortname, p.scratch_course_id).await;
}

/// The same, from the JSON of a report.
async fn assert_json_probe_left_nothing(site: &RealMoodle, report: &Value) {
    let p = &report["probe"];
    let shortname = p["scratch_shortname"]
        .as_str()
        .expect("a scratch shortname");
    assert!(shortname.starts_with("OVLE-PROBE-"), "{shortname}");
    assert_nothing_left(site, shortname, p["scratch_course_id"].as_i64()).await;
}

/// A copy of the lab's template to spoil, named `OVLE-PFT-<tag>`.
async fn scratch_template(site: &RealMoodle, tag: &str) -> i64 {
    let c = site.client();
    let req = DuplicateCourse {
        template_id: site.template,
        fullname: format!("OVLE preflight template {tag}"),
        shortname: format!("OVLE-PFT-{tag}"),
        category_id: site.category,
        visible: false,
    };
    for attempt in 1..=5u64 {
        match c.duplicate_course(&req).await {
            Ok(course) => return course.id,
            Err(e) if e.is_transient() && attempt < 5 => {
                tokio::time::sleep(std::time::Duration::from_millis(300 * attempt)).await
            }
            Err(e) => panic!("duplicate {}: {e}", req.shortname),
        }
    }
    unreachable!()
}

fn real(test: &str) -> Option<RealMoodle> {
    RealMoodle::from_env(test)
}

#[tokio::test]
async fn a_function_removed_from_the_service() {
    let Some(site) = real("preflight::a_function_removed_from_the_service") else {
        return;
    };
    site.wait_until_up().await;
    let enrol = ScratchService::without(&site, &["enrol_manual_enrol_users"]).await;
    let roles = ScratchService::without(&site, &["core_role_unassign_roles"]).await;
    let no_delete = ScratchService::without(&site, &["core_user_delete_users"]).await;
    let s = settings(&site);
    let quick = |token: String| {
        let s = s.clone();
        let site = site.clone();
        async move { check_with(&client_for(&site.url, &token), &s, &linked(site.template)).await }
    };
    let without_enrol = quick(enrol.token.clone()).await;
    let probe_without_enrol = check_and_probe(
        &client_for(&site.url, &enrol.token),
        &s,
        &linked(site.template),
        &ProbeOptions::default(),
    )
    .await;
    let without_roles = quick(roles.token.clone()).await;
    let without_delete = check_and_probe(
        &client_for(&site.url, &no_delete.token),
        &s,
        &linked(site.template),
        &ProbeOptions::default(),
    )
    .await;
    enrol.remove().await;
    roles.remove().await;
    no_delete.remove().await;
    // The account the probe had to leave, removed with the lab's token.
    let shared = site
        .client()
        .get_users_by_field(UserField::Username, &["openvle.probe".to_string()])
        .await
        .unwrap();
    if !shared.is_empty() {
        let ids: Vec<i64> = shared.iter().map(|u| u.id).collect();
        site.client().delete_users(&ids).await.unwrap();
    }

    // A required function: a problem naming it and where to add it; the probe does not start.
    assert!(!without_enrol.ok);
    assert_eq!(
        without_enrol.functions_missing,
        ["enrol_manual_enrol_users"]
    );
    let f = &with_name(&without_enrol, "functions")[0];
    assert_eq!(f.status, Status::Problem);
    assert!(f.detail.contains("enrol_manual_enrol_users"), "{f:?}");
    assert!(
        f.fix.as_deref().unwrap().contains("External services"),
        "{f:?}"
    );
    let p = probe_without_enrol.probe.as_ref().unwrap();
    assert_eq!(p.steps[0].name, "start");
    assert!(
        p.steps[0].detail.contains("enrol_manual_enrol_users"),
        "{p:?}"
    );
    // The function the role question needs: that question is skipped, saying why.
    let r = with_name(&without_roles, "role");
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r.iter().all(|f| f.status == Status::Skipped
        && f.detail
            .contains("core_role_unassign_roles is not in the token's service")));
    // core_user_delete_users is not one the engine needs: ok, and the probe leaves one account.
    assert!(without_delete.ok, "{}", without_delete.render_text());
    let p = without_delete.probe.as_ref().unwrap();
    let last = p.steps.last().unwrap();
    assert_eq!(
        (last.name, last.status),
        ("delete_account", Status::Warning),
        "{p:?}"
    );
    assert!(last.detail.contains("openvle.probe"), "{last:?}");
    assert_eq!(
        shared.len(),
        1,
        "the probe's account was left, and only one: {shared:?}"
    );
    assert_eq!(shared[0].auth.as_deref(), Some("manual"));
}

#[tokio::test]
async fn a_category_that_does_not_exist() {
    let Some(site) = real("preflight::a_category_that_does_not_exist") else {
        return;
    };
    site.wait_until_up().await;
    let c = site.client();
    let missing = 900_000_000 + i64::from(rand::random::<u16>());
    let wrong = MoodleSettings {
        course_category_id: Some(missing),
        ..settings(&site)
    };
    let r = check_and_probe(&c, &wrong, &linked(site.template), &ProbeOptions::default()).await;
    assert!(!r.ok);
    let cats = with_name(&r, "category");
    assert_eq!(cats.len(), 1, "{cats:?}");
    assert_eq!(cats[0].status, Status::Problem);
    assert!(
        cats[0].detail.contains(&format!(
            "MOODLE_COURSE_CATEGORY_ID: Moodle has no course category {missing}"
        )),
        "{cats:?}"
    );
    assert!(
        cats[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("Manage courses and categories"),
        "{cats:?}"
    );
    // The probe tries, Moodle refuses the duplication, nothing is made.
    let p = r.probe.as_ref().unwrap();
    assert_eq!(p.steps.len(), 1, "{p:?}");
    assert_eq!(
        (p.steps[0].name, p.steps[0].status),
        ("duplicate", Status::Problem)
    );
    assert!(p.steps[0].detail.contains("invalidrecord"), "{p:?}");
    assert!(
        p.steps[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("MOODLE_COURSE_CATEGORY_ID"),
        "{p:?}"
    );
    assert!(p.cleaned_up);
    assert_probe_left_nothing(&site, p).await;
}

#[tokio::test]
async fn a_template_without_a_manual_enrolment_method() {
    let Some(site) = real("preflight::a_template_without_a_manual_enrolment_method") else {
        return;
    };
    site.wait_until_up().await;
    let tag = run_tag();
    let disabled = scratch_template(&site, &format!("{tag}-d")).await;
    let deleted = scratch_template(&site, &format!("{tag}-x")).await;
    let db = lab_db().await;
    sqlx::query("UPDATE mdl_enrol SET status = 1 WHERE courseid = $1 AND enrol = 'manual'")
        .bind(disabled)
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("DELETE FROM mdl_enrol WHERE courseid = $1 AND enrol = 'manual'")
        .bind(deleted)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let c = site.client();
    let s = settings(&site);
    let mut targets = linked(disabled);
    targets.push((
        "environment other moodle_template_course_id".into(),
        Target::TemplateCourse(deleted),
    ));
    let quick = check_with(&c, &s, &targets).await;
    // core_enrol_get_course_enrolment_methods cannot tell either apart from the lab's template.
    let listed = [
        c.get_course_enrolment_methods(site.template).await.unwrap(),
        c.get_course_enrolment_methods(disabled).await.unwrap(),
    ];
    let mut probes = Vec::new();
    for template in [disabled, deleted] {
        let opts = ProbeOptions {
            template: Some(template),
        };
        probes.push(check_and_probe(&c, &s, &targets, &opts).await);
    }
    c.delete_courses(&[disabled, deleted]).await.unwrap();

    assert_eq!(listed[0], listed[1], "the same answer for both");
    assert!(quick.ok, "a warning only: {}", quick.render_text());
    let w = with_name(&quick, "template_manual_enrolment");
    assert_eq!(w.len(), 2, "{w:?}");
    for f in &w {
        assert_eq!(f.status, Status::Warning, "{f:?}");
        assert!(
            f.detail.contains("no enabled manual enrolment method"),
            "{f:?}"
        );
        assert!(
            f.fix.as_deref().unwrap().contains("Enrolment methods"),
            "{f:?}"
        );
    }
    assert_eq!(quick.warnings.len(), 2, "{:?}", quick.warnings);
    // The copies get the site's default methods: the probe enrols and leaves nothing.
    for r in &probes {
        let p = r.probe.as_ref().unwrap();
        assert!(p.ok, "{}", r.render_text());
        let manual = p
            .steps
            .iter()
            .find(|s| s.name == "manual_enrolment")
            .unwrap();
        assert_eq!(manual.status, Status::Ok, "{manual:?}");
        assert_eq!(p.steps.iter().filter(|s| s.name == "enrol").count(), 2);
        assert_probe_left_nothing(&site, p).await;
    }
}

#[tokio::test]
async fn a_token_of_the_site_administrator() {
    let Some(site) = real("preflight::a_token_of_the_site_administrator") else {
        return;
    };
    site.wait_until_up().await;
    let admin = ScratchService::for_user(&site, 2).await;
    let c = client_for(&site.url, &admin.token);
    let r = check_with(&c, &settings(&site), &linked(site.template)).await;
    // Role 1 (manager), which wsuser may not assign: the administrator may assign anything,
    // which is what the warning is about.
    let manager = MoodleSettings {
        student_role_id: 1,
        ..settings(&site)
    };
    let r1 = check_with(&c, &manager, &linked(site.template)).await;
    admin.remove().await;

    assert!(r.ok, "a warning, not a problem: {}", r.render_text());
    let f = &with_name(&r, "token_user")[0];
    assert_eq!(f.status, Status::Warning, "{f:?}");
    assert!(f.detail.contains("\"admin\""), "{f:?}");
    assert!(
        f.fix.as_deref().unwrap().contains("not a site admin"),
        "{f:?}"
    );
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.render_text().contains("[WARNING] token_user:"));
    assert!(r1.ok, "{}", r1.render_text());
    assert!(with_name(&r1, "role")
        .iter()
        .all(|f| f.status == Status::Ok));
    // The lab's own token: not an administrator.
    let own = check_with(&site.client(), &settings(&site), &[]).await;
    assert_eq!(with_name(&own, "token_user")[0].status, Status::Ok);
}

#[tokio::test]
async fn an_auth_plugin_that_is_not_enabled() {
    let Some(site) = real("preflight::an_auth_plugin_that_is_not_enabled") else {
        return;
    };
    site.wait_until_up().await;
    // ldap is installed on the lab and not enabled (only email is, besides manual and nologin).
    let db = lab_db().await;
    let enabled: String = sqlx::query_scalar("SELECT value FROM mdl_config WHERE name = 'auth'")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert!(
        !enabled.split(',').any(|a| a == "ldap"),
        "the lab enables ldap ({enabled}): this test needs a disabled plugin"
    );
    let c = site.client();
    let s = MoodleSettings {
        new_user_auth: "ldap".into(),
        ..settings(&site)
    };
    let r = check_and_probe(&c, &s, &linked(site.template), &ProbeOptions::default()).await;
    // Moodle creates such an account without complaint (the real behaviour the note tells).
    let tag = run_tag();
    let made = c
        .create_users(&[NewUser {
            username: format!("ovle.pf.ldap.{tag}"),
            firstname: "Ldap".into(),
            lastname: "Disabled".into(),
            email: format!("ovle.pf.ldap.{tag}@example.invalid"),
            auth: "ldap".into(),
            password: None,
            createpassword: false,
            idnumber: None,
        }])
        .await;
    let stored = match &made {
        Ok(rows) => {
            let u = c
                .get_users_by_field(UserField::Id, &[rows[0].id.to_string()])
                .await
                .unwrap();
            c.delete_users(&[rows[0].id]).await.unwrap();
            u.first().and_then(|u| u.auth.clone())
        }
        Err(_) => None,
    };

    assert!(made.is_ok(), "Moodle refused the account: {made:?}");
    assert_eq!(stored.as_deref(), Some("ldap"));
    assert!(r.ok, "{}", r.render_text());
    let f = &with_name(&r, "new_user_auth")[0];
    assert_eq!(f.status, Status::Skipped, "{f:?}");
    assert!(
        f.detail.contains("cannot be read over web services"),
        "{f:?}"
    );
    assert!(f.fix.as_deref().unwrap().contains("Manage authentication"));
    assert!(
        r.notes.iter().any(|n| n.contains("\"ldap\"")),
        "{:?}",
        r.notes
    );
    let p = r.probe.as_ref().unwrap();
    let account = p.steps.iter().find(|s| s.name == "account").unwrap();
    assert!(
        account.detail.contains("Moodle stored auth ldap")
            && account
                .detail
                .contains("does not show that ldap is enabled"),
        "{account:?}"
    );
    assert_probe_left_nothing(&site, p).await;
}

fn api_config(site: &RealMoodle) -> ApiConfig {
    let mut config = ApiConfig {
        writer_token: Some(Token::new(WRITER)),
        audit_token: Some(Token::new(AUDITOR)),
        ..ApiConfig::default()
    };
    config.moodle = settings(site);
    config.moodle.token = Some(moodle::Secret::new(site.token.clone()));
    config
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let resp = app
        .client
        .request(Method::GET, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    support::read(resp).await
}

#[tokio::test]
async fn the_probe_on_the_healthy_lab_leaves_nothing_behind() {
    let Some(site) = real("preflight::the_probe_on_the_healthy_lab_leaves_nothing_behind") else {
        return;
    };
    site.wait_until_up().await;
    let client = site.client();
    let app = TestApp::spawn_custom(Backend::Sqlite, api_config(&site), move |s| {
        s.with_moodle_client(client)
    })
    .await
    .expect("sqlite");
    let path = format!("/api/v1/moodle/check?probe=true&template={}", site.template);
    let (status, body) = get_as(&app, AUDITOR, &path).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(support::code(&body), "forbidden");
    let (status, quick) = get_as(&app, AUDITOR, "/api/v1/moodle/check").await;
    assert_eq!(status, StatusCode::OK, "{quick}");
    assert!(quick.get("probe").is_none(), "{quick}");
    let (status, report) = get_as(&app, WRITER, &path).await;
    app.stop().await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(!report.to_string().contains(&site.token), "the token shows");
    assert_eq!(report["ok"], true, "{report:#}");
    // Every quick finding ok on the healthy lab, but the auth note's (manual: ok too).
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}");
    }
    let v = &report["probe"];
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["cleaned_up"], true, "{v:#}");
    assert_eq!(v["left_behind"], serde_json::json!([]));
    assert!(v["scratch_course_id"].as_i64().is_some(), "{v:#}");
    let steps = v["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "duplicate",
            "set_idnumber",
            "manual_enrolment",
            "account",
            "enrol",
            "enrol",
            "unenrol",
            "delete_course",
            "delete_account"
        ]
    );
    for s in steps {
        assert_eq!(s["status"], "ok", "{s}");
        assert!(s["duration_ms"].is_u64(), "{s}");
    }
    assert_json_probe_left_nothing(&site, &report).await;
}

/// `openvle-moodle moodle check --probe --json` against the lab with extra `MOODLE_*` flags.
fn cli_probe(site: &RealMoodle, extra: &[String]) -> (i32, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let proc = Proc::new(Vec::new(), dir.path().join("check.log"));
    let mut moodle: Vec<String> = vec![
        "MOODLE_ENABLED=true".into(),
        format!("MOODLE_URL={}", site.url),
        format!("MOODLE_TOKEN={}", site.token),
        "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        format!("MOODLE_COURSE_CATEGORY_ID={}", site.category),
    ];
    moodle.extend_from_slice(extra);
    let mut args: Vec<String> = moodle
        .into_iter()
        .flat_map(|m| ["--moodle".to_string(), m])
        .collect();
    args.extend([
        "--database-url".into(),
        format!("sqlite://{}", dir.path().join("none.db").display()),
    ]);
    args.extend(
        ["moodle", "check", "--probe", "--json", "--template"]
            .iter()
            .map(|s| s.to_string()),
    );
    args.push(site.template.to_string());
    let (status, out, err) = proc.run_once(&args);
    assert!(
        !out.contains(&site.token) && !err.contains(&site.token),
        "the token shows:\n{out}\n{err}"
    );
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}:\n{out}\n{err}"));
    (status.code().unwrap_or(-1), report, err)
}

#[tokio::test]
async fn the_binary_probes_and_cleans_up_when_a_step_fails() {
    let Some(site) = real("preflight::the_binary_probes_and_cleans_up_when_a_step_fails") else {
        return;
    };
    site.wait_until_up().await;
    support::binary::binary();
    let (code, ok, err) = cli_probe(&site, &[]);
    assert_eq!(code, 0, "{ok:#}\n{err}");
    assert_eq!(ok["probe"]["ok"], true, "{ok:#}");
    // Role 1 (manager), which wsuser may not assign: the quick check says so, the probe's
    // enrolment fails midway, and the cleanup still removes the course and the account.
    let (code, bad, err) = cli_probe(&site, &["MOODLE_STUDENT_ROLE_ID=1".to_string()]);
    assert_eq!(code, 2, "{bad:#}\n{err}");
    assert_eq!(bad["ok"], false);
    let p = &bad["probe"];
    let steps = p["steps"].as_array().unwrap();
    let failed: Vec<&Value> = steps.iter().filter(|s| s["status"] == "problem").collect();
    assert_eq!(failed.len(), 1, "{p:#}");
    assert_eq!(failed[0]["name"], "enrol");
    assert!(failed[0]["detail"]
        .as_str()
        .unwrap()
        .contains("wsusercannotassign"));
    assert_eq!(p["cleaned_up"], true, "{p:#}");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(
        names.ends_with(&["delete_course", "delete_account"]),
        "{names:?}"
    );
    for report in [&ok, &bad] {
        assert_json_probe_left_nothing(&site, report).await;
    }
}

/// The API's rules for the parameters, on the simulator (no lab needed).
#[tokio::test]
async fn the_check_route_refuses_what_it_does_not_know() {
    let sim = moodle_sim::Simulator::start_local(moodle_sim::SimConfig::default())
        .await
        .unwrap();
    let opts = moodle::ClientOptions {
        allow_insecure_http: true,
        ..Default::default()
    };
    let client =
        MoodleClient::from_parts(&sim.url(), moodle::Secret::new(sim.token()), opts).unwrap();
    let mut config = ApiConfig {
        writer_token: Some(Token::new(WRITER)),
        audit_token: Some(Token::new(AUDITOR)),
        ..ApiConfig::default()
    };
    config.moodle.enabled = true;
    config.moodle.url = Some(sim.url());
    config.moodle.token = Some(moodle::Secret::new(sim.token()));
    config.moodle.allow_insecure_http = true;
    config.moodle.course_category_id = Some(moodle_sim::EVENTS_CATEGORY_ID);
    let app = TestApp::spawn_custom(Backend::Sqlite, config, move |s| {
        s.with_moodle_client(client)
    })
    .await
    .expect("sqlite");
    for bad in [
        "?probe=yes",
        "?template=2",
        "?probe=true&template=0",
        "?probe=true&template=x",
        "?colour=red",
    ] {
        let (status, body) = get_as(&app, WRITER, &format!("/api/v1/moodle/check{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(support::code(&body), "invalid_request", "{bad}: {body}");
    }
    assert_eq!(sim.call_counts().get("core_webservice_get_site_info"), None);
    let (status, body) = get_as(&app, AUDITOR, "/api/v1/moodle/check?probe=true").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(sim.call_counts().get("core_course_duplicate_course"), None);
    let (status, body) = get_as(&app, WRITER, "/api/v1/moodle/check?probe=false").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("probe").is_none());
    let (status, body) = get_as(
        &app,
        WRITER,
        &format!(
            "/api/v1/moodle/check?probe=true&template={}",
            moodle_sim::TEMPLATE_COURSE_ID
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["probe"]["ok"], true, "{body:#}");
    assert_eq!(sim.call_counts()["core_course_delete_courses"], 1);
    assert_eq!(
        sim.snapshot().courses.len(),
        2,
        "only the front page and the template"
    );
    app.stop().await;
    sim.shutdown().await;
}
