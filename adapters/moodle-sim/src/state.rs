//! The simulated site's data.
//!
//! Seed (what a fresh simulator holds):
//! * categories: 1 "Templates", 2 "Events", 3 "Runs", 4 "Archive" (3 and 4 have the ids and
//!   names of the lab's, so that a contract test moves a course to the same ids on both);
//! * courses: 1 the site course (the front page: listed by `core_course_get_courses_by_field`,
//!   never by the search, as on a real site), 2 `TEMPLATE-101`
//!   "Template 101" in category 1 (with a manual enrolment instance);
//! * users: 1 guest, 2 admin, 3 `wsuser` (the web-service user); created users start at id 4,
//!   duplicated courses at id 3, as on the observed site.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Id of the seeded template course.
pub const TEMPLATE_COURSE_ID: i64 = 2;
/// Id of the seeded "Templates" category.
pub const TEMPLATES_CATEGORY_ID: i64 = 1;
/// Id of the seeded "Events" category.
pub const EVENTS_CATEGORY_ID: i64 = 2;
/// Id of the seeded "Runs" category (category 3 on the lab too).
pub const RUNS_CATEGORY_ID: i64 = 3;
/// Id of the seeded "Archive" category (category 4 on the lab too).
pub const ARCHIVE_CATEGORY_ID: i64 = 4;
/// Id of the front-page course.
pub const SITE_COURSE_ID: i64 = 1;
/// Id of the web-service user.
pub const WS_USER_ID: i64 = 3;

/// A course category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimCategory {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Parent id (0 = top level).
    pub parent: i64,
}

/// A course.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimCourse {
    /// Id.
    pub id: i64,
    /// Unique short name.
    pub shortname: String,
    /// Full name.
    pub fullname: String,
    /// Category id.
    pub categoryid: i64,
    /// Visible to students.
    pub visible: bool,
    /// idnumber ("" = none).
    pub idnumber: String,
    /// Has an enabled manual enrolment instance.
    pub manual_enrol: bool,
    /// Start date, unix seconds (0 = none). Default so that files persisted before it load.
    #[serde(default)]
    pub startdate: i64,
    /// End date, unix seconds (0 = none).
    #[serde(default)]
    pub enddate: i64,
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimUser {
    /// Id.
    pub id: i64,
    /// Unique lowercase username.
    pub username: String,
    /// Email (unique case-insensitively on create).
    pub email: String,
    /// First name.
    pub firstname: String,
    /// Last name.
    pub lastname: String,
    /// Auth plugin.
    pub auth: String,
    /// Account suspended.
    pub suspended: bool,
    /// idnumber ("" = none). Not unique: Moodle lets two accounts share one (observed).
    #[serde(default)]
    pub idnumber: String,
}

/// A manual enrolment and the roles held in the course.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimEnrolment {
    /// User id.
    pub user_id: i64,
    /// Course id.
    pub course_id: i64,
    /// Enrolment suspended.
    pub suspended: bool,
    /// Role ids, in Moodle's order: the roles' sortorder, their id for the default roles.
    pub roles: Vec<i64>,
}

/// Everything the simulated site holds. This is also the snapshot and the persisted form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimState {
    /// Categories by id.
    pub categories: BTreeMap<i64, SimCategory>,
    /// Courses by id.
    pub courses: BTreeMap<i64, SimCourse>,
    /// Users by id.
    pub users: BTreeMap<i64, SimUser>,
    /// Enrolments by course id, then user id.
    pub enrolments: BTreeMap<i64, BTreeMap<i64, SimEnrolment>>,
    /// Next course id (never reused, even after a wipe).
    pub next_course_id: i64,
    /// Next user id (never reused, even after a wipe).
    pub next_user_id: i64,
}

impl Default for SimState {
    fn default() -> Self {
        Self::seed(3, 4)
    }
}

impl SimState {
    /// The seeded site with ids continuing from the given numbers.
    pub fn seed(next_course_id: i64, next_user_id: i64) -> Self {
        let mut s = SimState {
            categories: BTreeMap::new(),
            courses: BTreeMap::new(),
            users: BTreeMap::new(),
            enrolments: BTreeMap::new(),
            next_course_id,
            next_user_id,
        };
        for (id, name) in [
            (TEMPLATES_CATEGORY_ID, "Templates"),
            (EVENTS_CATEGORY_ID, "Events"),
            (RUNS_CATEGORY_ID, "Runs"),
            (ARCHIVE_CATEGORY_ID, "Archive"),
        ] {
            s.categories.insert(
                id,
                SimCategory {
                    id,
                    name: name.into(),
                    parent: 0,
                },
            );
        }
        s.courses.insert(
            SITE_COURSE_ID,
            SimCourse {
                id: SITE_COURSE_ID,
                shortname: "site".into(),
                fullname: "OpenVLE Moodle Simulator".into(),
                categoryid: 0,
                visible: true,
                idnumber: String::new(),
                manual_enrol: false,
                startdate: 0,
                enddate: 0,
            },
        );
        s.courses.insert(
            TEMPLATE_COURSE_ID,
            SimCourse {
                id: TEMPLATE_COURSE_ID,
                shortname: "TEMPLATE-101".into(),
                fullname: "Template 101".into(),
                categoryid: TEMPLATES_CATEGORY_ID,
                visible: true,
                idnumber: String::new(),
                manual_enrol: true,
                startdate: 0,
                enddate: 0,
            },
        );
        for (id, username, first, last) in [
            (1, "guest", "Guest user", " "),
            (2, "admin", "Admin", "User"),
            (WS_USER_ID, "wsuser", "Web service", "User"),
        ] {
            s.users.insert(
                id,
                SimUser {
                    id,
                    username: username.into(),
                    email: format!("{username}@sim.invalid"),
                    firstname: first.into(),
                    lastname: last.into(),
                    auth: "manual".into(),
                    suspended: false,
                    idnumber: String::new(),
                },
            );
        }
        s
    }

    /// A brand-new Moodle: only the seed, with ids continuing far above the old ones so that old
    /// course and user ids never come back.
    pub fn wiped(&self) -> Self {
        Self::seed(self.next_course_id + 1000, self.next_user_id + 1000)
    }

    /// Adds a user (no validation: the operator helper).
    pub fn add_user(
        &mut self,
        username: &str,
        email: &str,
        firstname: &str,
        lastname: &str,
        auth: &str,
    ) -> SimUser {
        let id = self.next_user_id;
        self.next_user_id += 1;
        let u = SimUser {
            id,
            username: username.into(),
            email: email.into(),
            firstname: firstname.into(),
            lastname: lastname.into(),
            auth: auth.into(),
            suspended: false,
            idnumber: String::new(),
        };
        self.users.insert(id, u.clone());
        u
    }

    /// Deletes a course and its enrolments; false if it did not exist.
    pub fn delete_course(&mut self, id: i64) -> bool {
        self.enrolments.remove(&id);
        self.courses.remove(&id).is_some()
    }

    /// Removes a manual enrolment (silent when absent).
    pub fn unenrol(&mut self, user_id: i64, course_id: i64) {
        if let Some(m) = self.enrolments.get_mut(&course_id) {
            m.remove(&user_id);
        }
    }

    /// Enrolment of a user in a course.
    pub fn enrolment(&self, user_id: i64, course_id: i64) -> Option<&SimEnrolment> {
        self.enrolments
            .get(&course_id)
            .and_then(|m| m.get(&user_id))
    }

    /// A course by short name.
    pub fn course_by_shortname(&self, shortname: &str) -> Option<&SimCourse> {
        self.courses.values().find(|c| c.shortname == shortname)
    }

    /// A user by username.
    pub fn user_by_username(&self, username: &str) -> Option<&SimUser> {
        self.users.values().find(|u| u.username == username)
    }
}
