//! Accounts after creation: the idnumber (stored as sent, looked up exactly, not unique),
//! `core_user_update_users` and its per-item warnings, and accounts of a single sign-on auth
//! plugin created without a password. Usernames and emails are `hc-…` with a random suffix.

use crate::common::{suffix, targets, Target};
use crate::contract::{cleanup, code};
use moodle::*;

/// A manual account `hc-{tag}-{s}` (its email the same at example.org).
pub fn hc_user(tag: &str, s: &str) -> NewUser {
    NewUser {
        idnumber: None,
        username: format!("hc-{tag}-{s}"),
        firstname: "Ada".into(),
        lastname: format!("Test {tag}"),
        email: format!("hc-{tag}-{s}@example.org"),
        auth: "manual".into(),
        password: Some(Secret::new("Sup3r-secret!pw")),
        createpassword: false,
    }
}

/// The one account with this id, as `core_user_get_users_by_field` shows it.
pub async fn user_by_id(t: &Target, c: &MoodleClient, id: i64) -> MoodleUser {
    let found = c
        .get_users_by_field(UserField::Id, &[id.to_string()])
        .await
        .unwrap_or_else(|e| panic!("{}: user {id}: {e}", t.name));
    assert_eq!(found.len(), 1, "{}: user {id}", t.name);
    found.into_iter().next().unwrap()
}

fn ids(users: &[MoodleUser]) -> Vec<i64> {
    let mut v: Vec<i64> = users.iter().map(|u| u.id).collect();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn idnumber_stored_and_looked_up_exactly() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let idnumber = format!("HC-{}", s.to_uppercase());
        let mut ada = hc_user("ida", &s);
        ada.idnumber = Some(idnumber.clone());
        let bob = hc_user("idb", &s);
        let created = c.create_users(&[ada, bob.clone()]).await.unwrap();
        let (ada_id, bob_id) = (created[0].id, created[1].id);
        let found = c
            .get_users_by_field(UserField::Idnumber, std::slice::from_ref(&idnumber))
            .await
            .unwrap();
        assert_eq!(ids(&found), [ada_id], "{}", t.name);
        assert_eq!(found[0].idnumber.as_deref(), Some(idnumber.as_str()));
        // Another case does not match, by either look-up (`=` on PostgreSQL, not LIKE).
        let lower = idnumber.to_lowercase();
        let miss = c
            .get_users_by_field(UserField::Idnumber, std::slice::from_ref(&lower))
            .await
            .unwrap();
        assert!(miss.is_empty(), "{}: {miss:?}", t.name);
        assert!(c
            .get_users(&[("idnumber", &lower)])
            .await
            .unwrap()
            .is_empty());
        let by_criteria = c.get_users(&[("idnumber", &idnumber)]).await.unwrap();
        assert_eq!(ids(&by_criteria), [ada_id], "{}", t.name);
        // An account without one shows no idnumber key at all, and an empty value matches
        // nobody (the client refuses it before sending).
        let mut form = Form::new();
        form.push("field", "username")
            .push_scalars("values", std::slice::from_ref(&bob.username));
        let raw = c
            .call_raw("core_user_get_users_by_field", &form)
            .await
            .unwrap();
        assert_eq!(raw[0]["id"], bob_id, "{}", t.name);
        assert!(raw[0].get("idnumber").is_none(), "{}: {raw}", t.name);
        let mut form = Form::new();
        form.push("field", "idnumber").push_scalars("values", &[""]);
        let raw = c
            .call_raw("core_user_get_users_by_field", &form)
            .await
            .unwrap();
        assert_eq!(raw, serde_json::json!([]), "{}", t.name);
        // Not unique: a second account may be created with the same idnumber.
        let mut carl = hc_user("idc", &s);
        carl.idnumber = Some(idnumber.clone());
        let carl_id = c.create_users(&[carl]).await.unwrap()[0].id;
        let both = c
            .get_users_by_field(UserField::Idnumber, std::slice::from_ref(&idnumber))
            .await
            .unwrap();
        assert_eq!(ids(&both), [ada_id, carl_id], "{}", t.name);
        cleanup(&t, &c, &[], &[ada_id, bob_id, carl_id]).await;
    }
}

#[tokio::test]
async fn update_users_changes_and_warns_per_item() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let created = c
            .create_users(&[hc_user("upa", &s), hc_user("upb", &s)])
            .await
            .unwrap();
        let (ada, bob) = (created[0].id, created[1].id);
        let new_email = format!("hc-upa2-{s}@example.org");
        let new_idnumber = format!("HC-UP-{s}");
        c.update_users(&[UserUpdate {
            id: ada,
            firstname: Some("Augusta".into()),
            lastname: Some("King".into()),
            email: Some(new_email.clone()),
            idnumber: Some(new_idnumber.clone()),
        }])
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        let u = user_by_id(&t, &c, ada).await;
        assert_eq!(
            (u.firstname.as_str(), u.lastname.as_str()),
            ("Augusta", "King")
        );
        assert_eq!(u.email.as_deref(), Some(new_email.as_str()), "{}", t.name);
        assert_eq!(u.idnumber.as_deref(), Some(new_idnumber.as_str()));
        // Bob's email, in another case: a warning, and nothing of that item is kept.
        let bob_email = format!("HC-UPB-{s}@EXAMPLE.ORG");
        let e = c
            .update_users(&[UserUpdate {
                id: ada,
                firstname: Some("Zed".into()),
                email: Some(bob_email),
                ..Default::default()
            }])
            .await
            .unwrap_err();
        assert_eq!(e.refusal(), Some(Refusal::EmailTaken), "{}: {e}", t.name);
        assert_eq!(e.code(), "useremailduplicate");
        assert_eq!(e.warnings().len(), 1);
        assert_eq!(e.warnings()[0].itemid, Some(ada));
        assert!(e.is_item_refusal() && !e.is_transient());
        let u = user_by_id(&t, &c, ada).await;
        assert_eq!(u.firstname, "Augusta", "{}", t.name);
        assert_eq!(u.email.as_deref(), Some(new_email.as_str()));
        // An unknown id is a warning of its own; the other item is kept.
        let e = c
            .update_users(&[
                UserUpdate {
                    id: 99_999_999,
                    firstname: Some("Nobody".into()),
                    ..Default::default()
                },
                UserUpdate {
                    id: bob,
                    firstname: Some("Bobby".into()),
                    ..Default::default()
                },
            ])
            .await
            .unwrap_err();
        assert!(e.is_missing_user(), "{}: {e}", t.name);
        assert_eq!(e.errorcode(), Some("invaliduserid"));
        assert_eq!(e.warnings().len(), 1);
        assert_eq!(e.warnings()[0].itemid, Some(99_999_999));
        assert!(e.to_string().contains("user 99999999"), "{e}");
        assert_eq!(user_by_id(&t, &c, bob).await.firstname, "Bobby");
        // The account's own email is no clash; an idnumber may be shared, and
        // an empty one clears it.
        c.update_users(&[
            UserUpdate {
                id: ada,
                email: Some(new_email.clone()),
                idnumber: Some(String::new()),
                ..Default::default()
            },
            UserUpdate {
                id: bob,
                idnumber: Some(new_idnumber.clone()),
                ..Default::default()
            },
        ])
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert_eq!(user_by_id(&t, &c, ada).await.idnumber, None, "{}", t.name);
        assert_eq!(
            user_by_id(&t, &c, bob).await.idnumber.as_deref(),
            Some(new_idnumber.as_str())
        );
        cleanup(&t, &c, &[], &[ada, bob]).await;
    }
}

#[tokio::test]
async fn update_users_refusals() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let ada = c.create_users(&[hc_user("upr", &s)]).await.unwrap()[0].id;
        // Refused locally, before any call: a bad email, a tag in a name.
        let before = c.calls_made();
        for bad in [
            UserUpdate {
                id: ada,
                email: Some("not an email".into()),
                ..Default::default()
            },
            UserUpdate {
                id: ada,
                firstname: Some("<b>x</b>".into()),
                ..Default::default()
            },
        ] {
            assert_eq!(code(c.update_users(&[bad]).await), "invalid_input");
        }
        // An item that changes nothing is not sent.
        c.update_users(&[UserUpdate {
            id: ada,
            ..Default::default()
        }])
        .await
        .unwrap();
        assert_eq!(c.calls_made(), before, "{}", t.name);
        // What Moodle says when the checks are bypassed: an invalid email is a warning, a tag
        // in a name fails the whole call.
        let raw = |item: Vec<(&str, String)>| {
            let mut form = Form::new();
            form.push_objects("users", &[item]);
            form
        };
        let f = "core_user_update_users";
        let v = c
            .call_raw(
                f,
                &raw(vec![
                    ("email", "not an email".into()),
                    ("id", ada.to_string()),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(
            v["warnings"][0]["warningcode"], "useremailinvalid",
            "{}",
            t.name
        );
        assert_eq!(v["warnings"][0]["itemid"], ada);
        let tagged = raw(vec![
            ("firstname", "<b>x</b>".into()),
            ("id", ada.to_string()),
        ]);
        assert_eq!(code(c.call_raw(f, &tagged).await), "invalidparameter");
        let ok = c
            .call_raw(
                f,
                &raw(vec![("lastname", "Fine".into()), ("id", ada.to_string())]),
            )
            .await
            .unwrap();
        assert_eq!(ok, serde_json::json!({"warnings": []}), "{}", t.name);
        // The administrator and the guest account may not be changed by the web-service user
        // (their first names sent as they are, so that nothing would change if they could).
        for (id, first, warning) in [
            (2, "Admin", "usernotupdatedadmin"),
            (1, "Guest user", "usernotupdatedguest"),
        ] {
            let e = c
                .update_users(&[UserUpdate {
                    id,
                    firstname: Some(first.into()),
                    ..Default::default()
                }])
                .await
                .unwrap_err();
            assert_eq!(e.code(), warning, "{}", t.name);
            assert_eq!(e.refusal(), Some(Refusal::AccountProtected));
        }
        cleanup(&t, &c, &[], &[ada]).await;
    }
}

#[tokio::test]
async fn single_sign_on_account_without_password() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let mut sso = hc_user("sso", &s);
        sso.auth = "oauth2".into();
        sso.password = None;
        // Created although the lab enables only the email plugin besides manual: Moodle checks
        // that the plugin is installed, not that it is enabled.
        let id = c.create_users(std::slice::from_ref(&sso)).await.unwrap()[0].id;
        let u = user_by_id(&t, &c, id).await;
        assert_eq!(u.auth.as_deref(), Some("oauth2"), "{}", t.name);
        assert_eq!(u.username, sso.username);
        // A plugin that is not installed is refused.
        let mut unknown = hc_user("ssx", &s);
        unknown.auth = "nosuchauth".into();
        unknown.password = None;
        assert_eq!(
            code(c.create_users(&[unknown.clone()]).await),
            "invalidparameter",
            "{}",
            t.name
        );
        let none = c
            .get_users_by_field(UserField::Username, &[unknown.username])
            .await
            .unwrap();
        assert!(none.is_empty(), "{}", t.name);
        cleanup(&t, &c, &[], &[id]).await;
    }
}
