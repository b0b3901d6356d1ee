//! Simulator-only behaviours: batching against max_input_vars, fault injection, operator helpers,
//! persistence and the `/_sim` admin API.

use crate::common;

use std::time::Duration;

use common::{sim_target, suffix};
use moodle::*;
use moodle_sim::{Faults, LostKind, ScriptedFault, SimConfig, TransientKind};

fn user(i: usize, s: &str) -> NewUser {
    NewUser {
        idnumber: None,
        username: format!("u{i}.{s}"),
        firstname: "Grace".into(),
        lastname: format!("H{i}"),
        email: format!("u{i}.{s}@example.org"),
        auth: "oauth2".into(),
        password: None,
        createpassword: false,
    }
}

#[tokio::test]
async fn batches_split_under_max_input_vars() {
    let t = sim_target(SimConfig::default()).await;
    let c = t.client_with(ClientOptions {
        max_input_vars: Some(100),
        ..Default::default()
    });
    let s = suffix();
    let users: Vec<NewUser> = (0..40).map(|i| user(i, &s)).collect();
    let created = c.create_users(&users).await.unwrap();
    assert_eq!(created.len(), 40);
    for (u, cr) in users.iter().zip(&created) {
        assert_eq!(u.username, cr.username, "input order kept");
    }
    let calls = t.sim().calls();
    // 5 vars per user, budget var_budget(100) = 81 → 16 users per call.
    let sizes: Vec<usize> = calls.iter().map(|c| c.batch_size).collect();
    assert_eq!(sizes, [16, 16, 8]);
    assert!(calls.iter().all(|c| c.vars <= 100 && !c.truncated));
    // Look-ups: 1 var per value.
    t.sim().reset_calls();
    let names: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
    let found = c
        .get_users_by_field(UserField::Username, &names)
        .await
        .unwrap();
    assert_eq!(found.len(), 40);
    assert_eq!(t.sim().calls().len(), 1);
}

#[tokio::test]
async fn release_decides_the_default_limit_lazily() {
    let t = sim_target(SimConfig::default()).await;
    let c = t.client();
    let s = suffix();
    // Small input: no release detection needed.
    c.create_users(&[user(0, &s)]).await.unwrap();
    assert_eq!(
        t.sim().call_counts().get("core_webservice_get_site_info"),
        None
    );
    // 300 users need more than 1000 vars: the client asks the release once, then uses 5000.
    let users: Vec<NewUser> = (1..=300).map(|i| user(i, &s)).collect();
    c.create_users(&users).await.unwrap();
    let counts = t.sim().call_counts();
    assert_eq!(counts["core_webservice_get_site_info"], 1);
    assert_eq!(
        counts["core_user_create_users"],
        1 + 3,
        "100 users per call cap"
    );
    assert_eq!(c.max_input_vars(), 5000);
}

#[tokio::test]
async fn truncation_fails_loudly_and_applies_nothing() {
    let t = sim_target(SimConfig {
        faults: Faults {
            max_input_vars: 60,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // The client believes the site allows 5000.
    let c = t.client_with(ClientOptions {
        max_input_vars: Some(5000),
        ..Default::default()
    });
    let s = suffix();
    let users: Vec<NewUser> = (0..20).map(|i| user(i, &s)).collect();
    let e = c.create_users(&users).await.unwrap_err();
    assert_eq!(e.code(), "invalidparameter");
    assert!(t.sim().calls()[0].truncated);
    assert_eq!(t.sim().snapshot().users.len(), 3, "nothing created");
    let enrol: Vec<Enrolment> = (0..20)
        .map(|i| Enrolment {
            user_id: 2,
            course_id: 2,
            role_id: 5,
            suspend: i % 2 == 0,
        })
        .collect();
    assert_eq!(
        c.enrol_users(&enrol).await.unwrap_err().code(),
        "invalidparameter"
    );
    assert!(t.sim().snapshot().enrolments.is_empty());
}

#[tokio::test]
async fn transient_faults_apply_nothing() {
    let t = sim_target(SimConfig::default()).await;
    let c = t.client();
    let s = suffix();
    for (how, code) in [
        (TransientKind::UnableToLock, "ex_unabletolock"),
        (TransientKind::Http503, "transport"),
        (TransientKind::HtmlPage, "bad_response"),
    ] {
        t.sim().push_fault(
            Some("core_user_create_users"),
            ScriptedFault::Transient { how },
        );
        let e = c.create_users(&[user(0, &s)]).await.unwrap_err();
        assert_eq!(e.code(), code);
        assert!(e.is_transient(), "{how:?}");
        assert!(t
            .sim()
            .snapshot()
            .user_by_username(&format!("u0.{s}"))
            .is_none());
    }
    assert_eq!(c.create_users(&[user(0, &s)]).await.unwrap().len(), 1);
}

#[tokio::test]
async fn lost_responses_are_outcome_unknown_but_applied() {
    let t = sim_target(SimConfig::default()).await;
    let c = t.client();
    let s = suffix();
    for (i, how) in [LostKind::Http502, LostKind::Drop].into_iter().enumerate() {
        t.sim()
            .push_fault(Some("core_user_create_users"), ScriptedFault::Lost { how });
        let e = c.create_users(&[user(i, &s)]).await.unwrap_err();
        assert!(e.outcome_unknown() && e.is_transient(), "{how:?}: {e}");
        assert_eq!(e.code(), "transport");
        let found = c
            .get_users_by_field(UserField::Username, &[format!("u{i}.{s}")])
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "effect applied despite the lost response");
    }
}

#[tokio::test]
async fn seeded_random_faults_are_reproducible() {
    async fn outcomes(seed: u64) -> Vec<String> {
        let faults = Faults {
            transient_error_rate: 0.3,
            lose_response_rate: 0.2,
            ..Default::default()
        };
        let t = sim_target(SimConfig {
            seed,
            faults,
            ..Default::default()
        })
        .await;
        let c = t.client();
        for _ in 0..30 {
            let _ = c.get_courses_by_field(CourseField::Id, "2").await;
        }
        t.sim().calls().into_iter().map(|c| c.outcome).collect()
    }
    let a = outcomes(7).await;
    assert_eq!(a, outcomes(7).await);
    assert!(a.iter().any(|o| o == "ok") && a.iter().any(|o| o != "ok"));
}

#[tokio::test]
async fn missing_function_and_disabled_rest() {
    let cfg = SimConfig {
        missing_functions: vec!["core_course_delete_courses".into()],
        ..Default::default()
    };
    let t = sim_target(cfg).await;
    let c = t.client();
    let e = c.delete_courses(&[2]).await.unwrap_err();
    assert_eq!(e.code(), "accessexception");
    assert!(e
        .to_string()
        .contains("core_course_delete_courses is not in the token's external service"));
    let report = check(&c).await;
    assert!(!report.ok);
    assert_eq!(report.functions_missing, ["core_course_delete_courses"]);
    let text = report.render_text();
    assert!(text.contains("missing: core_course_delete_courses"));
    assert!(text.contains("found:   core_user_create_users"), "{text}");
    assert!(
        !text.contains("found:   core_course_delete_courses"),
        "{text}"
    );
    t.sim().update_faults(|f| f.rest_disabled = true);
    let e = c.site_info().await.unwrap_err();
    assert_eq!(e.code(), "http_403");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn connection_refused_is_known_outcome_and_timeout_is_unknown() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let opts = ClientOptions {
        allow_insecure_http: true,
        ..Default::default()
    };
    let c = MoodleClient::from_parts(&format!("http://{addr}"), Secret::new("t"), opts).unwrap();
    let e = c.site_info().await.unwrap_err();
    assert_eq!(e.code(), "transport");
    assert!(e.is_transient() && !e.outcome_unknown(), "{e}");
    let report = check(&c).await;
    assert!(!report.reachable);

    let t = sim_target(SimConfig::default()).await;
    t.sim().update_faults(|f| f.latency_ms = 400);
    let c = t.client_with(ClientOptions {
        timeout: Duration::from_millis(100),
        ..Default::default()
    });
    let e = c.site_info().await.unwrap_err();
    assert!(e.is_transient() && e.outcome_unknown(), "{e}");
}

#[tokio::test]
async fn operator_helpers_and_wipe() {
    let t = sim_target(SimConfig::default()).await;
    let c = t.client();
    let d = c
        .duplicate_course(&DuplicateCourse {
            template_id: t.template,
            fullname: "W".into(),
            shortname: "OVLE-W".into(),
            category_id: t.category,
            visible: true,
        })
        .await
        .unwrap();
    assert_eq!(d.id, 3, "first duplicated course id as observed");
    let sim = t.sim();
    let u = sim.create_user_directly("mixed", "Mixed.Case@Example.org", "M", "C");
    assert_eq!(u.id, 4);
    c.enrol_users(&[Enrolment {
        user_id: u.id,
        course_id: d.id,
        role_id: 5,
        suspend: false,
    }])
    .await
    .unwrap();
    sim.unenrol_directly(u.id, d.id);
    assert!(c
        .get_enrolled_users(d.id, EnrolledFilter::All)
        .await
        .unwrap()
        .is_empty());
    assert!(sim.set_course_visible(d.id, false));
    assert_eq!(
        c.get_courses_by_field(CourseField::Id, "3").await.unwrap()[0].visible,
        Some(false)
    );
    assert!(sim.delete_course_directly(d.id));
    assert_eq!(
        c.delete_courses(&[d.id]).await.unwrap()[0].warningcode,
        "unknowncourseidnumber"
    );
    sim.wipe();
    let snap = sim.snapshot();
    assert_eq!(snap.courses.len(), 2);
    assert_eq!(snap.users.len(), 3);
    let d2 = c
        .duplicate_course(&DuplicateCourse {
            template_id: t.template,
            fullname: "W".into(),
            shortname: "OVLE-W".into(),
            category_id: t.category,
            visible: true,
        })
        .await
        .unwrap();
    assert!(d2.id > d.id + 100, "ids never come back after a wipe");
}

#[tokio::test]
async fn persistence_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.json");
    let cfg = SimConfig {
        persist_path: Some(path.clone()),
        ..Default::default()
    };
    let t = sim_target(cfg.clone()).await;
    let created = t.client().create_users(&[user(1, "p")]).await.unwrap();
    t.sim().shutdown().await;
    let t2 = sim_target(cfg).await;
    let found = t2
        .client()
        .get_users_by_field(UserField::Id, &[created[0].id.to_string()])
        .await
        .unwrap();
    assert_eq!(found[0].username, "u1.p");
}

#[tokio::test]
async fn admin_http_api() {
    let t = sim_target(SimConfig::default()).await;
    let http = reqwest::Client::new();
    let base = format!("{}/_sim", t.url);
    let state: serde_json::Value = http
        .get(format!("{base}/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["courses"]["2"]["shortname"], "TEMPLATE-101");
    let u: serde_json::Value = http
        .post(format!("{base}/users"))
        .json(&serde_json::json!({"username": "direct", "email": "Direct@Example.org"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(u["id"], 4);
    let r = http
        .post(format!("{base}/courses/2/visible"))
        .json(&serde_json::json!({"visible": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!t.sim().snapshot().courses[&2].visible);
    let faults = Faults {
        latency_ms: 1,
        ..Default::default()
    };
    http.put(format!("{base}/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(t.sim().faults().latency_ms, 1);
    http.post(format!("{base}/faults/queue"))
        .json(&serde_json::json!({"function": "core_webservice_get_site_info", "fault": {"kind": "transient"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        t.client().site_info().await.unwrap_err().code(),
        "ex_unabletolock"
    );
    let calls: serde_json::Value = http
        .get(format!("{base}/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["counts"]["core_webservice_get_site_info"], 1);
    http.delete(format!("{base}/calls")).send().await.unwrap();
    assert!(t.sim().calls().is_empty());
    http.post(format!("{base}/wipe")).send().await.unwrap();
    assert!(t.sim().snapshot().courses[&2].visible);
}
