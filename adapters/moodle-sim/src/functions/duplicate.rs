//! `core_course_duplicate_course`, in the phases a real Moodle goes through inside the one
//! request (4.4's `course/externallib.php`, and the lab's course table polled while it ran):
//!
//! 1. [`check`]: the template, the category, the options, the capabilities, then the shortname
//!    (checked once, here: a second duplication with the same shortname started before the
//!    first one's course exists is not refused);
//! 2. the backup of the template (about 60 % of the time): no course row exists yet;
//! 3. [`create_skeleton`]: `restore_dbops::create_new_course()` inserts the course with the
//!    requested names, hidden, without any enrolment instance;
//! 4. [`restore`]: the restore's course step renames it after the template (`TEMPLATE-101_1`,
//!    "Template 101 copy 1", as `restore_dbops::calculate_course_names()` makes them unique),
//!    gives it the template's visibility and the site's default enrolment instances; a look-up by
//!    the requested shortname finds nothing again until the end;
//! 5. [`finish`]: the requested names and visibility are set back, and the call answers.
//!
//! The server runs the phases with the configured duplication latency split between them, and
//! other calls may run in between, as on the real site. The backup file of a course has one
//! name (`backup.mbz` in its backup area) from the end of its backup to the end of the call: a
//! second duplication of the same template whose backup ends meanwhile may fail to write it
//! (`storedfilenotcreated`, seen on the lab; `Faults::backup_clash_rate`) and leaves nothing.

use serde_json::{json, Value};

use crate::errors::WsError;
use crate::params::{php_int, Obj};
use crate::rules::strip_tags_changes;
use crate::state::{SimCourse, SimState, SITE_COURSE_ID};

/// Shares of the duplication latency spent in the backup, with the skeleton, and in the
/// restore (measured on the lab: ~0.5 s, ~0.15 s, ~0.15 s of 0.8 s).
pub const PHASE_SHARES: [f64; 3] = [0.6, 0.2, 0.2];

/// A validated duplication, with what its backup took from the template.
#[derive(Clone, Debug)]
pub struct Plan {
    template: i64,
    fullname: String,
    shortname: String,
    categoryid: i64,
    visible: bool,
    template_fullname: String,
    template_shortname: String,
    template_visible: bool,
    template_startdate: i64,
    template_enddate: i64,
}

const OPTIONS: &[&str] = &[
    "activities",
    "blocks",
    "filters",
    "users",
    "enrolments",
    "role_assignments",
    "comments",
    "userscompletion",
    "logs",
    "grade_histories",
];

/// Validates a duplication in Moodle's order. Nothing is created.
pub fn check(s: &SimState, p: Obj<'_>) -> Result<Plan, WsError> {
    p.only(&[
        "courseid",
        "fullname",
        "shortname",
        "categoryid",
        "visible",
        "options",
    ])?;
    let courseid = p.req_int("courseid")?;
    let fullname = p.req_str("fullname")?;
    let shortname = p.req_str("shortname")?;
    let categoryid = p.req_int("categoryid")?;
    let visible = p.opt_int("visible")?.unwrap_or(1) != 0;
    if strip_tags_changes(fullname) || strip_tags_changes(shortname) {
        return Err(WsError::invalid_param());
    }
    let mut options = Vec::new();
    for opt in p.opt_list("options")?.unwrap_or_default() {
        let o = opt.obj()?;
        o.only(&["name", "value"])?;
        options.push((o.req_str("name")?, o.req_str("value")?));
    }
    let template = match s.courses.get(&courseid) {
        Some(t) if courseid != SITE_COURSE_ID => t,
        _ => return Err(WsError::invalid_course_id()),
    };
    if !s.categories.contains_key(&categoryid) {
        return Err(WsError::invalid_record("course_categories"));
    }
    let mut users = false;
    for (name, value) in options {
        // clean_param(PARAM_INT): PHP's (int) cast, so only what casts to 0 or 1 passes.
        let n = php_int(value);
        if !(n == 0 || n == 1) || !OPTIONS.contains(&name) {
            return Err(WsError::invalid_ext_param(name));
        }
        users |= name == "users" && n == 1;
    }
    if users {
        // The web-service user holds moodle/backup:userinfo but not moodle/restore:userinfo
        // (the capabilities of observed-4.4.md, as on the lab).
        return Err(WsError::no_permission("Restore user data"));
    }
    let taken: Vec<&str> = s
        .courses
        .values()
        .filter(|c| c.shortname == shortname)
        .map(|c| c.fullname.as_str())
        .collect();
    if !taken.is_empty() {
        return Err(WsError::shortname_taken(&taken.join(",")));
    }
    Ok(Plan {
        template: courseid,
        fullname: fullname.into(),
        shortname: shortname.into(),
        categoryid,
        visible,
        template_fullname: template.fullname.clone(),
        template_shortname: template.shortname.clone(),
        template_visible: template.visible,
        template_startdate: template.startdate,
        template_enddate: template.enddate,
    })
}

impl Plan {
    /// The course duplicated.
    pub fn template(&self) -> i64 {
        self.template
    }
}

/// The context id of a course as a fresh site numbers them (the lab's course 2 has context 14),
/// for the backup file's name in [`WsError::backup_file_clash`].
pub fn context_id(course: i64) -> i64 {
    course + 12
}

/// After the backup: the hidden course with the requested names and no enrolment instance.
pub fn create_skeleton(s: &mut SimState, plan: &Plan) -> Result<i64, WsError> {
    if !s.categories.contains_key(&plan.categoryid) {
        return Err(WsError::invalid_record("course_categories"));
    }
    let id = s.next_course_id;
    s.next_course_id += 1;
    s.courses.insert(
        id,
        SimCourse {
            id,
            shortname: plan.shortname.clone(),
            fullname: plan.fullname.clone(),
            categoryid: plan.categoryid,
            visible: false,
            idnumber: String::new(),
            manual_enrol: false,
            startdate: 0,
            enddate: 0,
        },
    );
    Ok(id)
}

/// The restore's course step: the template's names made unique, its visibility, the site's
/// default (enabled) manual enrolment instance.
pub fn restore(s: &mut SimState, id: i64, plan: &Plan) -> Result<(), WsError> {
    let (fullname, shortname) =
        unique_names(s, id, &plan.template_fullname, &plan.template_shortname);
    let c = s
        .courses
        .get_mut(&id)
        .ok_or_else(|| WsError::invalid_record("course"))?;
    c.fullname = fullname;
    c.shortname = shortname;
    c.visible = plan.template_visible;
    c.manual_enrol = true;
    // The restore keeps the template's dates; its idnumber is not copied (observed on the lab:
    // a duplicate of a course with idnumber and dates had the dates, and an empty idnumber).
    c.startdate = plan.template_startdate;
    c.enddate = plan.template_enddate;
    Ok(())
}

/// The end of the call: the requested names and visibility.
pub fn finish(s: &mut SimState, id: i64, plan: &Plan) -> Result<Value, WsError> {
    let c = s
        .courses
        .get_mut(&id)
        .ok_or_else(|| WsError::invalid_record("course"))?;
    c.fullname = plan.fullname.clone();
    c.shortname = plan.shortname.clone();
    c.visible = plan.visible;
    Ok(json!({"id": c.id, "shortname": c.shortname}))
}

/// `restore_dbops::calculate_course_names()`: the names as they are, else with ` copy N` and
/// `_N` for the first N at which no other course has either.
fn unique_names(s: &SimState, id: i64, fullname: &str, shortname: &str) -> (String, String) {
    let mut counter = 0u32;
    loop {
        let (full, short) = if counter == 0 {
            (fullname.to_string(), shortname.to_string())
        } else {
            (
                format!("{fullname} copy {counter}"),
                format!("{shortname}_{counter}"),
            )
        };
        let taken = s
            .courses
            .values()
            .any(|c| c.id != id && (c.fullname == full || c.shortname == short));
        if !taken {
            return (full, short);
        }
        counter += 1;
    }
}
