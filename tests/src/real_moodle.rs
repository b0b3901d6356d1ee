//! The real Moodle of the tests: the site `../shared/moodle-lab/setup.sh` makes (its `lab.env`
//! exports `MOODLE_TEST_URL`, `MOODLE_TEST_TOKEN`, `MOODLE_TEST_TEMPLATE_COURSE_ID`,
//! `MOODLE_TEST_CATEGORY_ID`).
//!
//! The site is shared by every test that runs at the same time, so nothing here resets it: each
//! run works with names of its own ([`run_tag`]) and reads back only what belongs to it. What
//! Moodle holds is read through Moodle's own web services ([`RealMoodle::snapshot`]), never
//! through the engine's view of itself. `OPENVLE_REQUIRE_MOODLE=1` (set by `.ci/run`) turns a
//! missing site into a failure, as `OPENVLE_REQUIRE_PG` does for PostgreSQL.

use std::collections::BTreeMap;
use std::time::Duration;

use moodle::{ClientOptions, CourseField, EnrolledFilter, MoodleClient, NewUser, Secret};
use moodle_sim::{SimCourse, SimEnrolment, SimState, SimUser};

use crate::lifecycle::Model;

/// Where the real site is and what it holds for the tests.
#[derive(Clone)]
pub struct RealMoodle {
    pub url: String,
    pub token: String,
    pub template: i64,
    pub category: i64,
}

impl std::fmt::Debug for RealMoodle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealMoodle")
            .field("url", &self.url)
            .field("template", &self.template)
            .field("category", &self.category)
            .finish_non_exhaustive()
    }
}

/// Whether a missing real Moodle fails the test run (CI) instead of skipping.
pub fn required() -> bool {
    std::env::var("OPENVLE_REQUIRE_MOODLE").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

impl RealMoodle {
    /// The site from `MOODLE_TEST_*`; None (after saying so) when they are unset, unless the real
    /// Moodle is required, which panics. `test` names the caller in the message.
    pub fn from_env(test: &str) -> Option<RealMoodle> {
        let found = (|| {
            Some(RealMoodle {
                url: var("MOODLE_TEST_URL")?,
                token: var("MOODLE_TEST_TOKEN")?,
                template: var("MOODLE_TEST_TEMPLATE_COURSE_ID")?.parse().ok()?,
                category: var("MOODLE_TEST_CATEGORY_ID")?.parse().ok()?,
            })
        })();
        if found.is_none() {
            let how = "set MOODLE_TEST_URL, MOODLE_TEST_TOKEN, MOODLE_TEST_TEMPLATE_COURSE_ID and \
                       MOODLE_TEST_CATEGORY_ID (`sudo ../shared/moodle-lab/setup.sh && . \
                       /var/tmp/moodle-lab/lab.env`)";
            assert!(
                !required(),
                "{test}: OPENVLE_REQUIRE_MOODLE is set but no real Moodle is configured: {how}"
            );
            eprintln!("skipped against a real Moodle: {test}: {how} to run it");
        }
        found
    }

    /// A client for the site.
    pub fn client(&self) -> MoodleClient {
        client_for(&self.url, &self.token)
    }

    /// The site answers `core_webservice_get_site_info` (a fresh php-fpm can refuse its very
    /// first request: tried a few times).
    pub async fn wait_until_up(&self) {
        let c = self.client();
        let mut last = String::new();
        for _ in 0..20 {
            match c.site_info().await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("the real Moodle at {} does not answer: {last}", self.url);
    }

    /// The `MOODLE_*` settings that point the engine at this site.
    pub fn engine_flags(&self) -> Vec<String> {
        vec![
            "MOODLE_ENABLED=true".into(),
            format!("MOODLE_URL={}", self.url),
            format!("MOODLE_TOKEN={}", self.token),
            format!("MOODLE_COURSE_CATEGORY_ID={}", self.category),
            "MOODLE_ALLOW_INSECURE_HTTP=true".into(),
        ]
    }

    /// Makes an account by hand, as a site administrator would have before the engine ran.
    pub async fn create_user(&self, username: &str, email: &str) -> i64 {
        create_account(&self.client(), username, email, None).await
    }

    /// What the site holds of `model`'s run, in the simulator's shape so that
    /// [`Model::check`] reads both alike: the courses named after the model's events, their
    /// enrolments (roles, suspended or not), and every account whose email is one of the
    /// model's (looked up case-insensitively, so a duplicate in another case shows).
    pub async fn snapshot(&self, model: &Model) -> SimState {
        let c = self.client();
        let mut s = SimState {
            categories: BTreeMap::new(),
            courses: BTreeMap::new(),
            users: BTreeMap::new(),
            enrolments: BTreeMap::new(),
            next_course_id: 0,
            next_user_id: 0,
        };
        let emails = model.linked_emails.iter().chain(&model.preexisting);
        for email in emails {
            let users = c
                .get_users(&[("email", email.as_str())])
                .await
                .unwrap_or_else(|e| panic!("look up {email}: {e}"));
            for u in users {
                s.users.insert(
                    u.id,
                    SimUser {
                        id: u.id,
                        username: u.username,
                        email: u.email.unwrap_or_default(),
                        firstname: u.firstname,
                        lastname: u.lastname,
                        auth: u.auth.unwrap_or_default(),
                        suspended: u.suspended.unwrap_or(false),
                        idnumber: u.idnumber.unwrap_or_default(),
                    },
                );
            }
        }
        for id in model.events.keys() {
            // Shaped by the defaults: idnumber `ovle-<id>`; unshaped: shortname `ovle-<id>`.
            let key = format!("ovle-{id}");
            let mut courses = Vec::new();
            for field in [CourseField::Idnumber, CourseField::Shortname] {
                for k in c
                    .get_courses_by_field(field, &key)
                    .await
                    .unwrap_or_else(|e| panic!("look up course {key}: {e}"))
                {
                    let own =
                        crate::is_course_of(&k.shortname, k.idnumber.as_deref().unwrap_or(""), id);
                    if own && !courses.iter().any(|x: &moodle::Course| x.id == k.id) {
                        courses.push(k);
                    }
                }
            }
            for course in courses {
                let all = c
                    .get_enrolled_users(course.id, EnrolledFilter::All)
                    .await
                    .unwrap_or_else(|e| panic!("enrolled users of {}: {e}", course.id));
                let suspended: Vec<i64> = c
                    .get_enrolled_users(course.id, EnrolledFilter::OnlySuspended)
                    .await
                    .unwrap_or_else(|e| panic!("suspended users of {}: {e}", course.id))
                    .into_iter()
                    .map(|u| u.id)
                    .collect();
                let mut enrolled = BTreeMap::new();
                for u in all {
                    s.users.entry(u.id).or_insert_with(|| SimUser {
                        id: u.id,
                        username: u.username.clone(),
                        email: u.email.clone().unwrap_or_default(),
                        firstname: String::new(),
                        lastname: String::new(),
                        auth: String::new(),
                        suspended: false,
                        idnumber: u.idnumber.clone().unwrap_or_default(),
                    });
                    enrolled.insert(
                        u.id,
                        SimEnrolment {
                            user_id: u.id,
                            course_id: course.id,
                            suspended: suspended.contains(&u.id),
                            roles: u.roles.iter().map(|r| r.roleid).collect(),
                        },
                    );
                }
                s.enrolments.insert(course.id, enrolled);
                s.courses.insert(
                    course.id,
                    SimCourse {
                        id: course.id,
                        shortname: course.shortname,
                        fullname: course.fullname,
                        categoryid: course.categoryid,
                        visible: course.visible.unwrap_or(true),
                        idnumber: course.idnumber.unwrap_or_default(),
                        manual_enrol: true,
                        startdate: course.startdate.unwrap_or(0),
                        enddate: course.enddate.unwrap_or(0),
                    },
                );
            }
        }
        s
    }
}

/// Makes an account by hand on the site `client` reaches (real or simulated), as a site
/// administrator would have before the engine ran; its id.
pub async fn create_account(
    client: &MoodleClient,
    username: &str,
    email: &str,
    idnumber: Option<&str>,
) -> i64 {
    let created = client
        .create_users(&[NewUser {
            idnumber: idnumber.map(str::to_string),
            username: username.into(),
            firstname: "Pre".into(),
            lastname: "Existing".into(),
            email: email.into(),
            auth: "manual".into(),
            password: Some(Secret::new("Pre-Existing-1!")),
            createpassword: false,
        }])
        .await
        .unwrap_or_else(|e| panic!("create {username}: {e}"));
    created[0].id
}

/// A client for `url` with `token` (plain http allowed: the lab serves on loopback).
pub fn client_for(url: &str, token: &str) -> MoodleClient {
    let opts = ClientOptions {
        allow_insecure_http: true,
        ..ClientOptions::default()
    };
    MoodleClient::from_parts(url, Secret::new(token.to_string()), opts)
        .unwrap_or_else(|e| panic!("a client for {url}: {e}"))
}

/// A short random tag that keeps one run's names apart from every other run's on the shared site.
pub fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}
