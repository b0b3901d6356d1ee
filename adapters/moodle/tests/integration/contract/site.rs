//! The site as a whole: preflight, tokens, unknown functions, the wire format.

use crate::common::{suffix, targets, Target};
use crate::contract::{cleanup, missing_code, new_course, new_user};
use moodle::*;

#[tokio::test]
async fn preflight_and_site_info() {
    for t in targets().await {
        let c = t.client();
        assert!(
            !format!("{c:?}").contains(&t.token),
            "Debug redacts the token"
        );
        let info = c.site_info().await.unwrap();
        assert!(info.userid > 0, "{}", t.name);
        let release = c.release().unwrap_or_default();
        match t.version {
            Some(v) => {
                assert_eq!(release, v.release(), "{}", t.name);
                assert_eq!(info.version.as_deref(), Some(v.version_number()));
            }
            None => assert!(release.starts_with("4.4"), "{}: {release}", t.name),
        }
        // Every function the engine calls is in the service (the lab's holds more).
        let report = check(&c).await;
        assert!(report.ok, "{}: {:?}", t.name, report.problems);
        assert!(report.functions_missing.is_empty());
        assert_eq!(report.functions_found.len(), REQUIRED_FUNCTIONS.len());
        for f in REQUIRED_FUNCTIONS {
            assert!(
                info.functions.iter().any(|x| x.name == *f),
                "{}: {f}",
                t.name
            );
        }
        assert!(report.render_text().contains("Moodle check: OK"));
    }
}

#[tokio::test]
async fn wrong_token_is_invalidtoken_and_permanent() {
    for t in targets().await {
        let bad = Target {
            token: "not-the-token".into(),
            sim: None,
            ..t
        };
        let e = bad.client().site_info().await.unwrap_err();
        assert_eq!(e.code(), "invalidtoken", "{}", bad.name);
        assert_eq!(e.refusal(), Some(Refusal::InvalidToken));
        assert!(!e.is_transient() && !e.outcome_unknown());
        assert!(!format!("{e:?}").contains("not-the-token"));
        let report = check(&bad.client()).await;
        assert!(report.reachable && !report.token_valid && !report.ok);
        assert!(report.problems[0].contains("MOODLE_TOKEN"));
    }
}

#[tokio::test]
async fn unknown_function_is_told_apart_from_a_missing_record() {
    for t in targets().await {
        let e = t
            .client()
            .call_raw("local_nothing_here", &Form::new())
            .await
            .unwrap_err();
        // 4.4 names the table external_functions; 5.1 answers like any missing record, and
        // the client tells them apart by what was asked.
        assert_eq!(e.code(), missing_code(&t), "{}", t.name);
        assert!(e.is_unknown_function(), "{}: {e:?}", t.name);
        assert!(!e.is_missing_record(), "{}", t.name);
        assert!(e.advice().contains("too old"), "{}", t.name);
    }
}

#[tokio::test]
async fn xml_without_json_format() {
    for t in targets().await {
        let resp = reqwest::Client::new()
            .post(format!("{}/webservice/rest/server.php", t.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("wstoken=wrong&wsfunction=core_webservice_get_site_info")
            .send()
            .await
            .unwrap();
        let text = resp.text().await.unwrap();
        let class = if t.is_5_1() {
            "core\\exception\\moodle_exception"
        } else {
            "moodle_exception"
        };
        assert!(
            text.contains(&format!("<EXCEPTION class=\"{class}\">")),
            "{}: {text}",
            t.name
        );
        assert!(text.contains("<ERRORCODE>invalidtoken</ERRORCODE>"));
    }
}

#[tokio::test]
async fn null_bodies_and_token_only_in_body() {
    for t in targets().await {
        let s = suffix();
        let c = t.client();
        let course = new_course(&t, &c, &s).await;
        let u = c.create_users(&[new_user("n", &s)]).await.unwrap()[0].id;
        // Raw HTTP to see the literal body.
        let body = format!(
            "wstoken={}&wsfunction=enrol_manual_enrol_users&moodlewsrestformat=json&enrolments[0][roleid]=5&enrolments[0][userid]={u}&enrolments[0][courseid]={}",
            t.token, course.id
        );
        let resp = reqwest::Client::new()
            .post(format!("{}/webservice/rest/server.php", t.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap().trim(), "null", "{}", t.name);
        if let Some(sim) = &t.sim {
            let calls = sim.calls();
            assert!(!calls.is_empty());
            for call in &calls {
                assert_eq!(call.method, "POST");
                assert!(
                    call.query.as_deref().unwrap_or("").is_empty(),
                    "query string used: {:?}",
                    call.query
                );
            }
        }
        cleanup(&t, &c, &[course.id], &[u]).await;
    }
}

#[tokio::test]
async fn check_notes_what_it_cannot_see() {
    for t in targets().await {
        let c = t.client();
        // No function of the service says which auth plugins are enabled (the lab's holds
        // every user and enrolment function, and none does): a note, never a problem.
        let generic = check(&c).await;
        assert!(generic.ok, "{}: {:?}", t.name, generic.problems);
        assert_eq!(generic.notes.len(), 1, "{}", t.name);
        assert!(generic.notes[0].contains("MOODLE_NEW_USER_AUTH"));
        let sso = MoodleSettings {
            new_user_auth: "oauth2".into(),
            ..MoodleSettings::default()
        };
        let r = check_for(&c, &sso).await;
        assert!(
            r.ok && r.problems.is_empty(),
            "{}: {:?}",
            t.name,
            r.problems
        );
        let text = r.render_text();
        assert!(
            text.contains("note: whether the auth plugin \"oauth2\" (MOODLE_NEW_USER_AUTH) is enabled cannot be read over web services"),
            "{text}"
        );
        assert!(text.contains("Manage authentication"), "{text}");
        // manual is always enabled: nothing to verify.
        let r = check_for(&c, &MoodleSettings::default()).await;
        assert!(r.notes.is_empty(), "{}: {:?}", t.name, r.notes);
        assert!(!r.render_text().contains("note:"));
    }
}
