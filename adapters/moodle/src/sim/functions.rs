//! The web-service functions, acting on [`SimState`] the way Moodle 4.4 does (observed-4.4.md
//! first, ws-contract.md for the rest). Atomic functions validate every item before changing
//! anything, which is what Moodle's delegated transaction amounts to.

use serde_json::{json, Value};

use super::errors::WsError;
use super::params::{parse_int, Obj, PVal};
use super::state::{SimCourse, SimEnrolment, SimState, SITE_COURSE_ID, WS_USER_ID};
use crate::wire::{has_tags, is_valid_email, is_valid_username};

/// Every function the simulator implements: exactly those the engine needs.
pub const FUNCTIONS: &[&str] = crate::check::REQUIRED_FUNCTIONS;

/// Functions that change the site (persisted after them).
pub fn is_mutating(function: &str) -> bool {
    matches!(
        function,
        "core_course_duplicate_course"
            | "core_course_update_courses"
            | "core_course_delete_courses"
            | "core_user_create_users"
            | "enrol_manual_enrol_users"
            | "enrol_manual_unenrol_users"
    )
}

/// Roles the web-service user may assign (observed: 3, 4, 5).
const ASSIGNABLE: &[i64] = &[3, 4, 5];

fn role_shortname(id: i64) -> &'static str {
    match id {
        1 => "manager",
        2 => "coursecreator",
        3 => "editingteacher",
        4 => "teacher",
        5 => "student",
        6 => "guest",
        7 => "user",
        _ => "",
    }
}

/// Site facts used by `core_webservice_get_site_info`.
pub struct SiteFacts<'a> {
    /// Release, e.g. `4.4`.
    pub release: &'a str,
    /// Functions of the token's service.
    pub functions: Vec<&'a str>,
    /// wwwroot.
    pub siteurl: String,
}

/// Number of items in the call's main list (for the call log).
pub fn batch_size(root: Obj<'_>) -> usize {
    for k in [
        "users",
        "enrolments",
        "courses",
        "courseids",
        "values",
        "criteria",
    ] {
        if let Ok(Some(l)) = root.opt_list(k) {
            return l.len();
        }
    }
    1
}

/// Runs one function other than the duplicate (see [`duplicate_start`]).
pub fn dispatch(
    s: &mut SimState,
    f: &str,
    p: Obj<'_>,
    site: &SiteFacts<'_>,
) -> Result<Value, WsError> {
    match f {
        "core_webservice_get_site_info" => site_info(s, p, site),
        "core_course_get_courses_by_field" => courses_by_field(s, p),
        "core_course_search_courses" => search_courses(s, p),
        "core_course_update_courses" => update_courses(s, p),
        "core_course_delete_courses" => delete_courses(s, p),
        "core_course_get_categories" => categories(s, p),
        "core_user_get_users_by_field" => users_by_field(s, p),
        "core_user_get_users" => get_users(s, p),
        "core_user_create_users" => create_users(s, p),
        "core_enrol_get_enrolled_users" => enrolled_users(s, p),
        "enrol_manual_enrol_users" => enrol(s, p),
        "enrol_manual_unenrol_users" => unenrol(s, p),
        _ => Err(WsError::invalid_record("external_functions")),
    }
}

fn site_info(s: &SimState, p: Obj<'_>, site: &SiteFacts<'_>) -> Result<Value, WsError> {
    p.only(&["serviceshortnames"])?;
    let ws = s.users.get(&WS_USER_ID);
    let version = match crate::wire::parse_release(site.release) {
        Some((3, 9)) => "2020061500",
        Some((3, 11)) => "2021051700",
        Some((4, 0)) => "2022041900",
        Some((4, 1)) => "2022112800",
        Some((4, 2)) => "2023042400",
        Some((4, 3)) => "2023100900",
        Some((4, 5)) => "2024100700",
        _ => "2024042200",
    };
    let functions: Vec<Value> = site
        .functions
        .iter()
        .map(|f| json!({"name": f, "version": version}))
        .collect();
    Ok(json!({
        "sitename": "OpenVLE Moodle Simulator",
        "username": ws.map_or("wsuser", |u| u.username.as_str()),
        "firstname": "Web service",
        "lastname": "User",
        "fullname": "Web service User",
        "lang": "en",
        "userid": WS_USER_ID,
        "siteurl": site.siteurl,
        "userpictureurl": "",
        "functions": functions,
        "downloadfiles": 0,
        "uploadfiles": 0,
        "release": format!("{} (Build: 20240422)", site.release),
        "version": version,
        "mobilecssurl": "",
        "advancedfeatures": [],
        "siteid": SITE_COURSE_ID,
        "userissiteadmin": false,
    }))
}

fn course_json(s: &SimState, c: &SimCourse) -> Value {
    let categoryname = s
        .categories
        .get(&c.categoryid)
        .map_or("", |k| k.name.as_str());
    json!({
        "id": c.id, "fullname": c.fullname, "displayname": c.fullname, "shortname": c.shortname,
        "categoryid": c.categoryid, "categoryname": categoryname, "summary": "", "summaryformat": 1,
        "format": "topics", "startdate": 0, "enddate": 0, "visible": i64::from(c.visible),
        "idnumber": c.idnumber, "contacts": [], "enrollmentmethods": if c.manual_enrol { json!(["manual"]) } else { json!([]) },
    })
}

fn courses_by_field(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["field", "value"])?;
    let field = p.opt_str("field")?.unwrap_or("");
    let value = p.opt_str("value")?.unwrap_or("");
    let int = || value.trim().parse::<i64>().unwrap_or(0);
    let keep: Box<dyn Fn(&SimCourse) -> bool> = match field {
        "" => Box::new(|_| true),
        "id" => Box::new(move |c| c.id == int()),
        "ids" => {
            let ids: Vec<i64> = value
                .split(',')
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            Box::new(move |c| ids.contains(&c.id))
        }
        "shortname" => Box::new(move |c| c.shortname == value),
        "idnumber" => Box::new(move |c| c.idnumber == value),
        "category" => Box::new(move |c| c.categoryid == int()),
        _ => return Err(WsError::invalid_param()),
    };
    let courses: Vec<Value> = s
        .courses
        .values()
        .filter(|c| c.id != SITE_COURSE_ID && keep(c))
        .map(|c| course_json(s, c))
        .collect();
    Ok(json!({"courses": courses, "warnings": []}))
}

fn search_courses(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&[
        "criterianame",
        "criteriavalue",
        "page",
        "perpage",
        "requiredcapabilities",
        "limittoenrolled",
        "onlywithcompletion",
    ])?;
    let name = p.req_str("criterianame")?;
    let text = p.req_str("criteriavalue")?.to_lowercase();
    let page = p.opt_int("page")?.unwrap_or(0).max(0) as usize;
    let perpage = p.opt_int("perpage")?.unwrap_or(0).max(0) as usize;
    p.opt_bool("limittoenrolled")?;
    p.opt_bool("onlywithcompletion")?;
    if !matches!(name, "search" | "modulelist" | "blocklist" | "tagid") {
        return Err(WsError::invalid_param());
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let hits: Vec<&SimCourse> = s
        .courses
        .values()
        .filter(|c| c.id != SITE_COURSE_ID && name == "search")
        .filter(|c| {
            let hay = format!("{} {} {}", c.fullname, c.shortname, c.idnumber).to_lowercase();
            words.iter().all(|w| hay.contains(w))
        })
        .collect();
    let total = hits.len();
    let page_items: Vec<Value> = if perpage == 0 {
        hits.iter().map(|c| course_json(s, c)).collect()
    } else {
        hits.iter()
            .skip(page * perpage)
            .take(perpage)
            .map(|c| course_json(s, c))
            .collect()
    };
    let page_items: Vec<Value> = page_items
        .into_iter()
        .map(|mut v| {
            if let Some(o) = v.as_object_mut() {
                o.remove("visible");
                o.remove("idnumber");
            }
            v
        })
        .collect();
    Ok(json!({"total": total, "courses": page_items, "warnings": []}))
}

/// Validates a duplicate and inserts the hidden skeleton course Moodle creates before restoring.
/// Returns the new id and the requested visibility for [`duplicate_finish`].
pub fn duplicate_start(s: &mut SimState, p: Obj<'_>) -> Result<(i64, bool), WsError> {
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
    if has_tags(fullname) || has_tags(shortname) {
        return Err(WsError::invalid_param());
    }
    for opt in p.opt_list("options")?.unwrap_or_default() {
        let o = opt.obj()?;
        o.only(&["name", "value"])?;
        let name = o.req_str("name")?;
        let value = o.req_str("value")?;
        let known = [
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
        if !known.contains(&name) || !(value == "0" || value == "1") {
            return Err(WsError::invalid_ext_param(name));
        }
        if name == "users" {
            // Observed: any `users` option needs moodle/backup:userinfo, which the WS user lacks here.
            return Err(WsError::setting_locked());
        }
    }
    if !s.categories.contains_key(&categoryid) {
        return Err(WsError::invalid_record("course_categories"));
    }
    if courseid == SITE_COURSE_ID || !s.courses.contains_key(&courseid) {
        return Err(WsError::invalid_course_id());
    }
    if let Some(other) = s.course_by_shortname(shortname) {
        return Err(WsError::shortname_taken(&other.fullname));
    }
    let id = s.next_course_id;
    s.next_course_id += 1;
    s.courses.insert(
        id,
        SimCourse {
            id,
            shortname: shortname.into(),
            fullname: fullname.into(),
            categoryid,
            visible: false,
            idnumber: String::new(),
            manual_enrol: false,
        },
    );
    Ok((id, visible))
}

/// Completes a duplicate: the restore set visibility and added the default manual instance.
pub fn duplicate_finish(s: &mut SimState, id: i64, visible: bool) -> Result<Value, WsError> {
    let c = s
        .courses
        .get_mut(&id)
        .ok_or_else(|| WsError::invalid_record("course"))?;
    c.visible = visible;
    c.manual_enrol = true;
    Ok(json!({"id": c.id, "shortname": c.shortname}))
}

fn warning(itemid: i64, code: &str, message: String) -> Value {
    json!({"item": "course", "itemid": itemid, "warningcode": code, "message": message})
}

fn update_courses(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["courses"])?;
    let allowed = [
        "id",
        "fullname",
        "shortname",
        "categoryid",
        "idnumber",
        "summary",
        "summaryformat",
        "format",
        "showgrades",
        "newsitems",
        "startdate",
        "enddate",
        "maxbytes",
        "showreports",
        "visible",
        "groupmode",
        "groupmodeforce",
        "defaultgroupingid",
        "enablecompletion",
        "completionnotify",
        "lang",
    ];
    let mut items = Vec::new();
    for item in p.req_list("courses")? {
        let o = item.obj()?;
        o.only(&allowed)?;
        let id = o.req_int("id")?;
        for k in [
            "categoryid",
            "startdate",
            "enddate",
            "visible",
            "summaryformat",
        ] {
            o.opt_int(k)?;
        }
        for k in ["fullname", "shortname"] {
            if o.opt_str(k)?.is_some_and(has_tags) {
                return Err(WsError::invalid_param());
            }
        }
        items.push((id, o));
    }
    let mut warnings = Vec::new();
    for (id, o) in items {
        let Some(current) = s.courses.get(&id).cloned() else {
            warnings.push(warning(
                id,
                "invalidrecord",
                "Can't find data record in database table course.".into(),
            ));
            continue;
        };
        let mut c = current.clone();
        if let Some(v) = o.opt_str("shortname")? {
            if let Some(other) = s.courses.values().find(|x| x.shortname == v && x.id != id) {
                warnings.push(warning(
                    id,
                    "shortnametaken",
                    format!(
                        "Short name is already used for another course ({})",
                        other.fullname
                    ),
                ));
                continue;
            }
            c.shortname = v.into();
        }
        if let Some(v) = o.opt_str("idnumber")? {
            if !v.is_empty() {
                if let Some(other) = s.courses.values().find(|x| x.idnumber == v && x.id != id) {
                    warnings.push(warning(
                        id,
                        "courseidnumbertaken",
                        format!(
                            "Course ID number is already used for another course ({})",
                            other.fullname
                        ),
                    ));
                    continue;
                }
            }
            c.idnumber = v.into();
        }
        if let Some(v) = o.opt_int("categoryid")? {
            if !s.categories.contains_key(&v) {
                warnings.push(warning(
                    id,
                    "invalidrecord",
                    "Can't find data record in database table course_categories.".into(),
                ));
                continue;
            }
            c.categoryid = v;
        }
        if let Some(v) = o.opt_str("fullname")? {
            if v.trim().is_empty() {
                warnings.push(warning(id, "errorinvalidparam", "Invalid parameter".into()));
                continue;
            }
            c.fullname = v.into();
        }
        if let Some(v) = o.opt_int("visible")? {
            c.visible = v != 0;
        }
        s.courses.insert(id, c);
    }
    Ok(json!({"warnings": warnings}))
}

fn delete_courses(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["courseids"])?;
    let ids: Vec<i64> = p
        .req_list("courseids")?
        .into_iter()
        .map(|v| {
            v.str()
                .and_then(|x| parse_int(x).ok_or_else(WsError::invalid_param))
        })
        .collect::<Result<_, _>>()?;
    let mut warnings = Vec::new();
    // In order, no transaction: what was deleted before a problem stays deleted.
    for id in ids {
        if id == SITE_COURSE_ID {
            warnings.push(warning(
                id,
                "cannotdeletecourse",
                format!("You don't have permission to delete course {id}"),
            ));
        } else if !s.delete_course(id) {
            warnings.push(warning(
                id,
                "unknowncourseidnumber",
                format!("Unknown course ID {id}"),
            ));
        }
    }
    Ok(json!({"warnings": warnings}))
}

fn categories(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["criteria", "addsubcategories"])?;
    let addsub = p.opt_bool("addsubcategories")?.unwrap_or(true);
    let mut crit = Vec::new();
    for c in p.opt_list("criteria")?.unwrap_or_default() {
        let o = c.obj()?;
        o.only(&["key", "value"])?;
        let key = o.req_str("key")?;
        if !matches!(
            key,
            "id" | "ids" | "name" | "parent" | "idnumber" | "visible" | "theme"
        ) {
            return Err(WsError::new(
                "invalid_parameter_exception",
                "criteriaerror",
                "Missing permissions to view this criteria: invalid_key",
            ));
        }
        crit.push((key, o.req_str("value")?));
    }
    let matches = |id: i64, name: &str, parent: i64| {
        crit.iter().all(|(k, v)| match *k {
            "id" => v.parse::<i64>().ok() == Some(id),
            "ids" => v
                .split(',')
                .any(|x| x.trim().parse::<i64>().ok() == Some(id)),
            "name" => *v == name,
            "parent" => v.parse::<i64>().ok() == Some(parent),
            _ => true,
        })
    };
    let mut hit: Vec<i64> = s
        .categories
        .values()
        .filter(|c| matches(c.id, &c.name, c.parent))
        .map(|c| c.id)
        .collect();
    if addsub && !crit.is_empty() {
        let mut i = 0;
        while i < hit.len() {
            let parent = hit[i];
            for c in s.categories.values().filter(|c| c.parent == parent) {
                if !hit.contains(&c.id) {
                    hit.push(c.id);
                }
            }
            i += 1;
        }
    }
    let out: Vec<Value> = hit
        .iter()
        .filter_map(|id| s.categories.get(id))
        .map(|c| {
            let count = s.courses.values().filter(|x| x.categoryid == c.id).count();
            json!({"id": c.id, "name": c.name, "idnumber": "", "description": "", "descriptionformat": 1,
                   "parent": c.parent, "sortorder": c.id * 10000, "coursecount": count, "visible": 1,
                   "visibleold": 1, "timemodified": 0, "depth": 1, "path": format!("/{}", c.id), "theme": ""})
        })
        .collect();
    Ok(Value::Array(out))
}

fn user_json(u: &super::state::SimUser) -> Value {
    json!({"id": u.id, "username": u.username, "firstname": u.firstname, "lastname": u.lastname,
           "fullname": format!("{} {}", u.firstname, u.lastname), "email": u.email, "department": "",
           "institution": "", "idnumber": "", "auth": u.auth, "suspended": u.suspended, "confirmed": true,
           "lang": "en", "theme": "", "timezone": "99", "mailformat": 1, "description": "",
           "descriptionformat": 1, "profileimageurlsmall": "", "profileimageurl": ""})
}

fn users_by_field(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["field", "values"])?;
    let field = p.req_str("field")?;
    let values: Vec<&str> = p
        .req_list("values")?
        .into_iter()
        .map(PVal::str)
        .collect::<Result<_, _>>()?;
    let valid = |v: &str| match field {
        "id" => parse_int(v).is_some(),
        "username" => is_valid_username(v),
        "email" => is_valid_email(v),
        _ => true,
    };
    if !matches!(field, "id" | "idnumber" | "username" | "email") {
        return Err(WsError::new(
            "coding_exception",
            "codingerror",
            "Coding error detected, it must be fixed by a programmer: invalid field parameter",
        ));
    }
    if !values.iter().all(|v| valid(v)) {
        return Err(WsError::invalid_param());
    }
    // Exact match, case-sensitive (like PostgreSQL).
    let out: Vec<Value> = s
        .users
        .values()
        .filter(|u| {
            values.iter().any(|v| match field {
                "id" => parse_int(v) == Some(u.id),
                "username" => u.username == *v,
                "email" => u.email == *v,
                _ => false,
            })
        })
        .map(user_json)
        .collect();
    Ok(Value::Array(out))
}

/// SQL `LIKE` with `%` and `_`, case-insensitive.
fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
            Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
            Some((c, rest)) => v.first() == Some(c) && go(&v[1..], rest),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

fn get_users(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["criteria"])?;
    let mut crit: Vec<(&str, &str)> = Vec::new();
    let mut warnings = Vec::new();
    for c in p.req_list("criteria")? {
        let o = c.obj()?;
        o.only(&["key", "value"])?;
        let (k, v) = (o.req_str("key")?, o.req_str("value")?);
        if !matches!(
            k,
            "id" | "lastname" | "firstname" | "idnumber" | "username" | "email" | "auth"
        ) {
            warnings.push(json!({"item": k, "warningcode": "invalidfieldparameter", "message": format!("The search key '{k}' is not supported, look at the web service documentation")}));
            continue;
        }
        if crit.iter().any(|(x, _)| *x == k) {
            return Err(WsError::new(
                "moodle_exception",
                "keyalreadyset",
                "Key already set",
            ));
        }
        crit.push((k, v));
    }
    let users: Vec<Value> = if crit.is_empty() {
        Vec::new()
    } else {
        s.users
            .values()
            .filter(|u| {
                crit.iter().all(|(k, v)| match *k {
                    "id" => parse_int(v) == Some(u.id),
                    "username" => u.username == *v,
                    "auth" => u.auth == *v,
                    "email" => like(&u.email, v),
                    "firstname" => like(&u.firstname, v),
                    "lastname" => like(&u.lastname, v),
                    _ => false,
                })
            })
            .map(user_json)
            .collect()
    };
    Ok(json!({"users": users, "warnings": warnings}))
}

const USER_KEYS: &[&str] = &[
    "createpassword",
    "username",
    "auth",
    "password",
    "firstname",
    "lastname",
    "email",
    "maildisplay",
    "city",
    "country",
    "timezone",
    "description",
    "firstnamephonetic",
    "lastnamephonetic",
    "middlename",
    "alternatename",
    "interests",
    "idnumber",
    "institution",
    "department",
    "phone1",
    "phone2",
    "address",
    "lang",
    "calendartype",
    "theme",
    "mailformat",
    "customfields",
    "preferences",
];

/// The default password policy: 8+ chars, a digit, a lower and an upper case letter, a symbol.
fn password_policy_error(pw: &str) -> Option<WsError> {
    let ok = pw.chars().count() >= 8
        && pw.chars().any(|c| c.is_ascii_digit())
        && pw.chars().any(|c| c.is_lowercase())
        && pw.chars().any(|c| c.is_uppercase())
        && pw.chars().any(|c| !c.is_alphanumeric());
    (!ok).then(|| {
        let text = "<div>Passwords must be at least 8 characters long.</div><div>Passwords must have at least 1 digit(s).</div><div>Passwords must have at least 1 lower case letter(s).</div><div>Passwords must have at least 1 upper case letter(s).</div><div>The password must have at least 1 special character(s) such as *, -, or #.</div>";
        WsError::new("moodle_exception", text, format!("error/{text}"))
    })
}

fn create_users(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["users"])?;
    type NewRow<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
    let mut new: Vec<NewRow<'_>> = Vec::new();
    for item in p.req_list("users")? {
        let o = item.obj()?;
        o.only(USER_KEYS)?;
        for k in ["mailformat", "maildisplay"] {
            o.opt_int(k)?;
        }
        let username = o.req_str("username")?;
        let firstname = o.req_str("firstname")?;
        let lastname = o.req_str("lastname")?;
        let email = o.req_str("email")?;
        let auth = o.opt_str("auth")?.unwrap_or("manual");
        let createpassword = o.opt_bool("createpassword")?.unwrap_or(false);
        let password = o.opt_str("password")?;
        let blank = |v: &str| v.trim().is_empty();
        if !is_valid_username(username)
            || blank(firstname)
            || blank(lastname)
            || has_tags(firstname)
            || has_tags(lastname)
        {
            return Err(WsError::invalid_param());
        }
        let taken_name =
            s.user_by_username(username).is_some() || new.iter().any(|(u, ..)| *u == username);
        if taken_name || matches!(auth, "mnet" | "webservice") || auth.is_empty() {
            return Err(WsError::invalid_param());
        }
        let internal = matches!(auth, "manual" | "email");
        if internal && password.is_none() && !createpassword {
            return Err(WsError::invalid_param());
        }
        let lower = email.to_lowercase();
        let taken_email = s.users.values().any(|u| u.email.to_lowercase() == lower)
            || new.iter().any(|(_, _, _, e, _)| e.to_lowercase() == lower);
        if !is_valid_email(email) || taken_email {
            return Err(WsError::invalid_param());
        }
        if let (true, Some(pw)) = (internal, password) {
            if let Some(e) = password_policy_error(pw) {
                return Err(e);
            }
        }
        new.push((username, firstname, lastname, email, auth));
    }
    let out: Vec<Value> = new
        .into_iter()
        .map(|(username, first, last, email, auth)| {
            let u = s.add_user(username, email, first, last, auth);
            json!({"id": u.id, "username": u.username})
        })
        .collect();
    Ok(Value::Array(out))
}

fn enrolled_users(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["courseid", "options"])?;
    let courseid = p.req_int("courseid")?;
    let (mut active, mut suspended) = (false, false);
    for opt in p.opt_list("options")?.unwrap_or_default() {
        let o = opt.obj()?;
        o.only(&["name", "value"])?;
        let on = |v: &str| !matches!(v, "" | "0" | "false");
        match o.req_str("name")? {
            "onlyactive" => active = on(o.req_str("value")?),
            "onlysuspended" => suspended = on(o.req_str("value")?),
            "withcapability" | "groupid" | "userfields" | "limitfrom" | "limitnumber"
            | "sortby" | "sortdirection" => {}
            _ => return Err(WsError::invalid_param()),
        }
    }
    if !s.courses.contains_key(&courseid) {
        return Err(WsError::invalid_record("course"));
    }
    if active && suspended {
        return Err(WsError::new("coding_exception", "codingerror", "Coding error detected, it must be fixed by a programmer: Both onlyactive and onlysuspended are set, this is not allowed"));
    }
    let out: Vec<Value> = s
        .enrolments
        .get(&courseid)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|e| if e.suspended { !active } else { !suspended })
        .filter_map(|e| s.users.get(&e.user_id).map(|u| (u, e)))
        .map(|(u, e)| {
            let roles: Vec<Value> = e
                .roles
                .iter()
                .map(|r| json!({"roleid": r, "name": "", "shortname": role_shortname(*r), "sortorder": 0}))
                .collect();
            json!({"id": u.id, "username": u.username, "firstname": u.firstname, "lastname": u.lastname,
                   "fullname": format!("{} {}", u.firstname, u.lastname), "email": u.email, "roles": roles,
                   "groups": [], "lastcourseaccess": 0})
        })
        .collect();
    Ok(Value::Array(out))
}

fn enrol(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
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
    // Same checks, same order as Moodle; the first failure rolls back the whole call.
    for &(roleid, userid, courseid, _) in &todo {
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
            e.roles.push(roleid);
        }
    }
    Ok(Value::Null)
}

fn unenrol(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
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
        if !course.manual_enrol {
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

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_is_case_insensitive_with_wildcards() {
        assert!(like("Case.Test@Example.org", "case.test@example.org"));
        assert!(like("ab_c@x.org", "ab_c@x.org"));
        assert!(like("abXc@x.org", "ab_c@x.org"));
        assert!(like("anything", "%"));
        assert!(!like("abc", "ab"));
    }
}
