//! Accounts: matching by email and username, creation and its all-or-nothing batches, and
//! the strict parameter validation Moodle applies to every call.

use crate::common::{suffix, targets};
use crate::contract::{cleanup, code, new_user};
use moodle::*;

#[tokio::test]
async fn users_email_case_and_all_or_nothing() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let mut ada = new_user("ada", &s);
        ada.email = format!("Case.Test.{s}@Example.org");
        let created = c.create_users(std::slice::from_ref(&ada)).await.unwrap();
        assert_eq!(created[0].username, ada.username);
        let exact = c
            .get_users_by_field(UserField::Email, &[ada.email.clone()])
            .await
            .unwrap();
        assert_eq!(exact.len(), 1);
        assert_eq!(exact[0].id, created[0].id);
        let lower = c
            .get_users_by_field(UserField::Email, &[ada.email.to_lowercase()])
            .await
            .unwrap();
        assert!(
            lower.is_empty(),
            "{}: case-sensitive like PostgreSQL",
            t.name
        );
        let fallback = c
            .get_users(&[("email", &ada.email.to_lowercase())])
            .await
            .unwrap();
        assert_eq!(fallback.len(), 1);
        assert_eq!(fallback[0].id, created[0].id);
        let by_name = c
            .get_users_by_field(UserField::Username, &[ada.username.clone()])
            .await
            .unwrap();
        assert_eq!(by_name[0].id, created[0].id);
        // A new account whose email differs only in case is refused, and the batch is all-or-nothing.
        let fresh = new_user("bob", &s);
        let mut clash = new_user("carl", &s);
        clash.email = ada.email.to_lowercase();
        let e = c.create_users(&[fresh.clone(), clash]).await.unwrap_err();
        assert_eq!(e.code(), "invalidparameter");
        let none = c
            .get_users_by_field(UserField::Username, std::slice::from_ref(&fresh.username))
            .await
            .unwrap();
        assert!(
            none.is_empty(),
            "first user of a failed batch must not exist"
        );
        // Existing username.
        assert_eq!(
            code(c.create_users(&[ada.clone()]).await),
            "invalidparameter"
        );
        cleanup(&t, &c, &[], &[created[0].id]).await;
    }
}

#[tokio::test]
async fn local_validation_spares_a_call() {
    for t in targets().await {
        let c = t.client();
        let mut bad = new_user("x", &suffix());
        bad.username = "Ada.Upper".into();
        let e = c.create_users(&[bad]).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        let e = c
            .get_users_by_field(UserField::Username, &["Upper".into()])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        let e = c
            .get_courses_by_field(CourseField::Idnumber, "")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert_eq!(c.calls_made(), 0);
        // What Moodle itself says when the check is bypassed.
        let mut form = Form::new();
        form.push("field", "username")
            .push_scalars("values", &["Upper"]);
        assert_eq!(
            code(c.call_raw("core_user_get_users_by_field", &form).await),
            "invalidparameter"
        );
    }
}

#[tokio::test]
async fn password_policy_errorcode_is_free_text() {
    for t in targets().await {
        let mut u = new_user("pw", &suffix());
        u.password = Some(Secret::new("short"));
        let e = t.client().create_users(&[u]).await.unwrap_err();
        // The free text stays available to people; the stable code is bounded (metrics label).
        let errorcode = e.errorcode().unwrap_or_default();
        assert!(errorcode.contains("Passwords must"), "{errorcode}");
        assert!(e.to_string().contains("Passwords must"), "{e}");
        assert_eq!(e.code(), "other");
        assert_eq!(e.refusal(), Some(Refusal::PasswordPolicy), "{}", t.name);
        assert!(e.is_item_refusal());
        assert!(!e.is_transient());
    }
}

#[tokio::test]
async fn strict_parameter_validation() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let user = |extra: Option<(&str, &str)>| {
            let mut item = vec![
                ("firstname", "A".to_string()),
                ("lastname", "B".to_string()),
                ("email", format!("strict.{s}@example.org")),
            ];
            if let Some((k, v)) = extra {
                item.push((k, v.to_string()));
            }
            item.push(("username", format!("strict.{s}")));
            let mut form = Form::new();
            form.push_objects("users", &[item]);
            form
        };
        // Booleans must be 0/1, unknown keys and mistyped values are refused.
        for form in [
            user(Some(("createpassword", "true"))),
            user(Some(("nosuchkey", "1"))),
            user(Some(("mailformat", "x"))),
        ] {
            assert_eq!(
                code(c.call_raw("core_user_create_users", &form).await),
                "invalidparameter"
            );
        }
        // A missing required key.
        let mut form = Form::new();
        form.push_objects(
            "enrolments",
            &[vec![
                ("courseid", t.template.to_string()),
                ("userid", "2".to_string()),
            ]],
        );
        assert_eq!(
            code(c.call_raw("enrol_manual_enrol_users", &form).await),
            "invalidparameter"
        );
        // A non-canonical integer.
        let mut form = Form::new();
        form.push("courseid", format!("0{}", t.template));
        assert_eq!(
            code(c.call_raw("core_enrol_get_enrolled_users", &form).await),
            "invalidparameter"
        );
        // A missing required list.
        assert_eq!(
            code(c.call_raw("core_user_create_users", &Form::new()).await),
            "invalidparameter"
        );
        // Nothing was created by any of these.
        let none = c
            .get_users_by_field(UserField::Username, &[format!("strict.{s}")])
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}

#[tokio::test]
async fn look_ups_clean_values_as_moodle_does() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let ada = new_user("clean", &s);
        let id = c.create_users(std::slice::from_ref(&ada)).await.unwrap()[0].id;
        let raw = |function: &'static str, form: Form| {
            let c = c.clone();
            async move { c.call_raw(function, &form).await }
        };
        // An email Moodle would refuse at creation is a miss for the look-up, not an error.
        let mut form = Form::new();
        form.push("field", "email")
            .push_scalars("values", &["not an email"]);
        let v = raw("core_user_get_users_by_field", form).await.unwrap();
        assert_eq!(v, serde_json::json!([]), "{}", t.name);
        // core_user_get_users lowercases a username before comparing.
        let upper = ada.username.to_uppercase();
        let found = c.get_users(&[("username", &upper)]).await.unwrap();
        assert_eq!(
            found.iter().map(|u| u.id).collect::<Vec<_>>(),
            [id],
            "{}",
            t.name
        );
        // A key sent twice fails the call; an unsupported one is dropped with a warning, and
        // with nothing else asked every account comes back.
        let crit = |items: &[(&str, &str)]| {
            let items: Vec<Vec<(&str, String)>> = items
                .iter()
                .map(|(k, v)| vec![("value", v.to_string()), ("key", k.to_string())])
                .collect();
            let mut form = Form::new();
            form.push_objects("criteria", &items);
            form
        };
        let twice = crit(&[("email", &ada.email), ("email", &ada.email)]);
        let e = raw("core_user_get_users", twice).await.unwrap_err();
        assert_eq!(e.code(), "keyalreadyset", "{}", t.name);
        assert!(e.to_string().contains("error/keyalreadyset"), "{e}");
        let v = raw("core_user_get_users", crit(&[("nosuchkey", "x")]))
            .await
            .unwrap();
        assert_eq!(v["warnings"][0]["warningcode"], "invalidfieldparameter");
        let all = v["users"].as_array().cloned().unwrap_or_default();
        assert!(
            all.iter().any(|u| u["id"] == id),
            "{}: {} users",
            t.name,
            all.len()
        );
        let v = raw(
            "core_user_get_users",
            crit(&[("nosuchkey", "x"), ("email", &ada.email)]),
        )
        .await
        .unwrap();
        assert_eq!(v["users"].as_array().map(Vec::len), Some(1), "{}", t.name);
        cleanup(&t, &c, &[], &[id]).await;
    }
}
