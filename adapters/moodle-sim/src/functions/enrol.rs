//! Enrolments (`enrol/externallib.php`, `enrol/manual/externallib.php`).

use serde_json::{json, Value};

use super::{role_shortname, Ctx, ASSIGNABLE};
use crate::errors::WsError;
use crate::params::Obj;
use crate::state::{SimEnrolment, SimState, SimUser, SITE_COURSE_ID};

fn participant(u: &SimUser, roles: &[i64]) -> Value {
    let roles: Vec<Value> = roles
        .iter()
        .map(|r| json!({"roleid": r, "name": "", "shortname": role_shortname(*r), "sortorder": 0}))
        .collect();
    let mut v = json!({"id": u.id, "username": u.username, "firstname": u.firstname, "lastname": u.lastname,
           "fullname": format!("{} {}", u.firstname, u.lastname), "email": u.email, "roles": roles,
           "groups": [], "lastcourseaccess": 0});
    // As in `user_get_user_details()`: only when not empty (observed).
    if !u.idnumber.is_empty() {
        v["idnumber"] = json!(u.idnumber);
    }
    v
}

/// `core_enrol_get_enrolled_users`. Options Moodle does not know are ignored, values are true
/// unless empty or `0` (PHP's `!empty()`); the front page lists every account, without roles.
pub(super) fn enrolled_users(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["courseid", "options"])?;
    let courseid = p.req_int("courseid")?;
    let (mut active, mut suspended) = (false, false);
    for opt in p.opt_list("options")?.unwrap_or_default() {
        let o = opt.obj()?;
        o.only(&["name", "value"])?;
        let value = o.req_str("value")?;
        let on = !matches!(value, "" | "0");
        match o.req_str("name")? {
            "onlyactive" => active = on,
            "onlysuspended" => suspended = on,
            "sortby" if !matches!(value, "id" | "firstname" | "lastname" | "siteorder") => {
                return Err(WsError::invalid_param())
            }
            "sortdirection" if !matches!(value.to_uppercase().as_str(), "ASC" | "DESC") => {
                return Err(WsError::invalid_param())
            }
            _ => {}
        }
    }
    if !s.courses.contains_key(&courseid) {
        return Err(WsError::invalid_record("course"));
    }
    if active && suspended {
        return Err(WsError::coding(
            "Both onlyactive and onlysuspended are set, this is probably not what you want!",
        ));
    }
    if courseid == SITE_COURSE_ID {
        return Ok(Value::Array(
            s.users.values().map(|u| participant(u, &[])).collect(),
        ));
    }
    let out: Vec<Value> = s
        .enrolments
        .get(&courseid)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|e| if e.suspended { !active } else { !suspended })
        .filter_map(|e| s.users.get(&e.user_id).map(|u| participant(u, &e.roles)))
        .collect();
    Ok(Value::Array(out))
}

/// `enrol_manual_enrol_users`: an upsert (roles are added, `suspend` set or cleared); the checks
/// in Moodle's order, the first failure rolling back the whole call.
pub(super) fn enrol(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["enrolments"])?;
    let mut todo = Vec::new();
    for item in p.req_list("enrolments")? {
        let o = item.obj()?;
        o.only(&[
            "roleid",
            "userid",
            "courseid",
            "timestart",
            "timeend",
            "suspend",
        ])?;
        let (roleid, userid, courseid) = (
            o.req_int("roleid")?,
            o.req_int("userid")?,
            o.req_int("courseid")?,
        );
        o.opt_int("timestart")?;
        o.opt_int("timeend")?;
        let suspend = o.opt_int("suspend")?.unwrap_or(0) != 0;
        todo.push((roleid, userid, courseid, suspend));
    }
    for &(roleid, userid, courseid, _) in &todo {
        // context_course::instance(IGNORE_MISSING) then validate_context(false).
        let course = s
            .courses
            .get(&courseid)
            .ok_or_else(WsError::invalid_param)?;
        if !ASSIGNABLE.contains(&roleid) {
            return Err(WsError::cannot_assign(roleid, userid, courseid));
        }
        if !course.manual_enrol {
            return Err(WsError::no_instance());
        }
        if !s.users.contains_key(&userid) {
            return Err(WsError::no_user());
        }
    }
    for (roleid, userid, courseid, suspend) in todo {
        let e = s
            .enrolments
            .entry(courseid)
            .or_default()
            .entry(userid)
            .or_insert_with(|| SimEnrolment {
                user_id: userid,
                course_id: courseid,
                suspended: suspend,
                roles: Vec::new(),
            });
        e.suspended = suspend;
        if !e.roles.contains(&roleid) {
            // Listed in the roles' sortorder, which for the default roles is their id
            // (observed: student 5 then editingteacher 3 come back as [3, 5]).
            e.roles.push(roleid);
            e.roles.sort_unstable();
        }
    }
    Ok(Value::Null)
}

/// `enrol_manual_unenrol_users`: silent for someone not enrolled. Moodle looks the manual
/// instance up whatever its status, so a disabled one still unenrols; only a course without
/// any (the front page, a duplicate before its restore) answers `wsnoinstance`.
pub(super) fn unenrol(s: &mut SimState, p: Obj<'_>, ctx: &Ctx<'_>) -> Result<Value, WsError> {
    p.only(&["enrolments"])?;
    let mut todo = Vec::new();
    for item in p.req_list("enrolments")? {
        let o = item.obj()?;
        o.only(&["userid", "courseid", "roleid"])?;
        let (userid, courseid) = (o.req_int("userid")?, o.req_int("courseid")?);
        o.opt_int("roleid")?;
        todo.push((userid, courseid));
    }
    for &(userid, courseid) in &todo {
        let course = s
            .courses
            .get(&courseid)
            .ok_or_else(|| WsError::invalid_record("course"))?;
        let no_instance = !course.manual_enrol
            && (courseid == SITE_COURSE_ID || ctx.building.contains(&courseid));
        if no_instance {
            return Err(WsError::no_instance());
        }
        if !s.users.contains_key(&userid) {
            return Err(WsError::invalid_param());
        }
    }
    for (userid, courseid) in todo {
        s.unenrol(userid, courseid);
    }
    Ok(Value::Null)
}

/// `core_role_unassign_roles`, course contexts only (`contextlevel=course` with `instanceid`;
/// a `contextid` is refused, the simulator having no context ids). All-or-nothing: every item
/// checked first, a missing course or a role the web-service user may not assign failing the
/// call with `invalidparameter`; a role not held, a user not enrolled or a user id that does not
/// exist is a silent no-op (all observed). The enrolment stays, perhaps without any role.
pub(super) fn unassign_roles(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["unassignments"])?;
    let mut todo = Vec::new();
    for item in p.req_list("unassignments")? {
        let o = item.obj()?;
        o.only(&[
            "roleid",
            "userid",
            "contextid",
            "contextlevel",
            "instanceid",
        ])?;
        let (roleid, userid) = (o.req_int("roleid")?, o.req_int("userid")?);
        let contextid = o.opt_int("contextid")?.unwrap_or(0);
        let level = o.opt_str("contextlevel")?;
        // PARAM_ALPHA refuses a value its cleaning would change.
        if level.is_some_and(|l| !l.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(WsError::invalid_param());
        }
        let instance = o.opt_int("instanceid")?;
        todo.push((roleid, userid, contextid, level, instance));
    }
    let mut apply = Vec::new();
    for (roleid, userid, contextid, level, instance) in todo {
        // get_context_from_params(): "course" is the only level parsed here ("Course" is not
        // one, observed); a course that does not exist gives no context, which
        // validate_context() refuses.
        let courseid = match (contextid, level, instance) {
            (0, Some("course"), Some(id)) if s.courses.contains_key(&id) => id,
            _ => return Err(WsError::invalid_param()),
        };
        if !ASSIGNABLE.contains(&roleid) {
            return Err(WsError::invalid_param());
        }
        apply.push((roleid, userid, courseid));
    }
    for (roleid, userid, courseid) in apply {
        if let Some(e) = s
            .enrolments
            .get_mut(&courseid)
            .and_then(|m| m.get_mut(&userid))
        {
            e.roles.retain(|r| *r != roleid);
        }
    }
    Ok(Value::Null)
}

/// `core_enrol_get_course_enrolment_methods`: the enabled instances whose plugin describes
/// itself (`get_enrol_info()`). Moodle 4.4's manual plugin does not, so its instance is never
/// listed (read in `enrol/externallib.php` and `lib/enrollib.php`; the lab answers `[]` for its
/// template, whose only enabled instance is manual, its guest and self ones being disabled):
/// the simulator's courses have only a manual instance, so the answer is always `[]`. A course
/// that does not exist is `MUST_EXIST`'s missing record (observed).
pub(super) fn enrolment_methods(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["courseid"])?;
    let courseid = p.req_int("courseid")?;
    if !s.courses.contains_key(&courseid) {
        return Err(WsError::invalid_record("course"));
    }
    Ok(json!([]))
}
