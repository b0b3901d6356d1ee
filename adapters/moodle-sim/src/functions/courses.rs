//! Course look-ups, updates, deletion and categories (`course/externallib.php`).

use serde_json::{json, Value};

use super::Ctx;
use crate::errors::{missing_record_warning, WsError};
use crate::params::{parse_int, php_int, Obj};
use crate::rules::strip_tags_changes;
use crate::state::{SimCourse, SimState, SITE_COURSE_ID};

pub(super) fn course_json(s: &SimState, c: &SimCourse) -> Value {
    let categoryname = s
        .categories
        .get(&c.categoryid)
        .map_or("", |k| k.name.as_str());
    let format = if c.id == SITE_COURSE_ID {
        "site"
    } else {
        "topics"
    };
    json!({
        "id": c.id, "fullname": c.fullname, "displayname": c.fullname, "shortname": c.shortname,
        "categoryid": c.categoryid, "categoryname": categoryname, "summary": "", "summaryformat": 1,
        "format": format, "startdate": c.startdate, "enddate": c.enddate, "visible": i64::from(c.visible),
        "idnumber": c.idnumber, "contacts": [], "enrollmentmethods": if c.manual_enrol { json!(["manual"]) } else { json!([]) },
    })
}

/// `core_course_get_courses_by_field`. The front page (course 1) is a course like any other
/// here: no field lists it, and so do `id=1` and an empty `idnumber` (observed).
pub(super) fn by_field(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
    p.only(&["field", "value"])?;
    let field = p.opt_str("field")?.unwrap_or("");
    let value = p.opt_str("value")?.unwrap_or("");
    let keep: Box<dyn Fn(&SimCourse) -> bool> = match field {
        "" => Box::new(|_| true),
        "id" => Box::new(move |c| c.id == php_int(value)),
        "ids" => {
            // PARAM_SEQUENCE keeps digits and commas; an empty item reaches the SQL as '' and
            // a course that does not exist makes PHP fail on a null (both observed on 4.4).
            let cleaned: String = value
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == ',')
                .collect();
            let ids: Vec<i64> = cleaned
                .split(',')
                .map(|v| v.parse().map_err(|_| WsError::dml_read()))
                .collect::<Result<_, _>>()?;
            if ids.iter().any(|id| !s.courses.contains_key(id)) {
                return Err(WsError::php_error(
                    "Attempt to assign property \"contextvalidated\" on null",
                ));
            }
            Box::new(move |c| ids.contains(&c.id))
        }
        "shortname" => Box::new(move |c| c.shortname == value),
        "idnumber" => Box::new(move |c| c.idnumber == value),
        "category" => Box::new(move |c| c.categoryid == php_int(value)),
        _ => return Err(WsError::invalid_param()),
    };
    let courses: Vec<Value> = s
        .courses
        .values()
        .filter(|c| keep(c))
        .map(|c| course_json(s, c))
        .collect();
    Ok(json!({"courses": courses, "warnings": []}))
}

/// `core_course_search_courses`: the front page is never a hit.
pub(super) fn search(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
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
    let shown = if perpage == 0 { hits.len() } else { perpage };
    let page_items: Vec<Value> = hits
        .iter()
        .skip(if perpage == 0 { 0 } else { page * perpage })
        .take(shown)
        .map(|c| {
            let mut v = course_json(s, c);
            if let Some(o) = v.as_object_mut() {
                o.remove("visible");
                o.remove("idnumber");
            }
            v
        })
        .collect();
    Ok(json!({"total": total, "courses": page_items, "warnings": []}))
}

fn warning(itemid: i64, code: &str, message: String) -> Value {
    json!({"item": "course", "itemid": itemid, "warningcode": code, "message": message})
}

const UPDATE_KEYS: &[&str] = &[
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

/// `core_course_update_courses`: parameters are validated for the whole call (an exception),
/// then each course is updated on its own and its failure caught into a warning, in the order
/// of Moodle's checks (blank names, then `update_course()`'s taken shortname and idnumber, then
/// the dates, then the category; observed on the 4.4 lab with all of them wrong at once).
pub(super) fn update(s: &mut SimState, p: Obj<'_>, ctx: &Ctx<'_>) -> Result<Value, WsError> {
    p.only(&["courses"])?;
    let mut items = Vec::new();
    for item in p.req_list("courses")? {
        let o = item.obj()?;
        o.only(UPDATE_KEYS)?;
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
        o.opt_str("idnumber")?;
        for k in ["fullname", "shortname"] {
            if o.opt_str(k)?.is_some_and(strip_tags_changes) {
                return Err(WsError::invalid_param());
            }
        }
        items.push((id, o));
    }
    let mut warnings = Vec::new();
    for (id, o) in items {
        let done = update_one(s, id, o, ctx);
        if let Some(c) = done.written {
            s.courses.insert(id, c);
        }
        if let Some((code, message)) = done.warning {
            warnings.push(warning(id, code, message));
        }
    }
    Ok(json!({"warnings": warnings}))
}

/// What updating one course did.
struct Updated {
    /// The course as written, if it was.
    written: Option<SimCourse>,
    /// The warning's code and message, if any.
    warning: Option<(&'static str, String)>,
}

impl Updated {
    fn refused(warning: (&'static str, String)) -> Self {
        Updated {
            written: None,
            warning: Some(warning),
        }
    }
}

/// One course of an update; its values were validated with the whole call. A category that
/// does not exist is found only after the row was written (`update_course()` reads it without
/// MUST_EXIST, hides the course as if the category were hidden, writes it, then fails moving
/// its context): the course stays changed, in a category that does not exist, and the call
/// answers a missing-record warning (observed on the lab).
fn update_one(s: &SimState, id: i64, o: Obj<'_>, ctx: &Ctx<'_>) -> Updated {
    let text = |k: &str| o.opt_str(k).ok().flatten();
    let int = |k: &str| o.opt_int(k).ok().flatten();
    let Some(current) = s.courses.get(&id) else {
        return Updated::refused(missing_record_warning("course", ctx.version));
    };
    let mut c = current.clone();
    for (name, old) in [
        ("fullname", &current.fullname),
        ("shortname", &current.shortname),
    ] {
        if let Some(v) = text(name) {
            if v != old && v.trim().is_empty() {
                return Updated::refused((
                    "errorinvalidparam",
                    format!("The param \"{name}\" is invalid."),
                ));
            }
        }
    }
    if let Some(v) = text("shortname") {
        if v != current.shortname && s.courses.values().any(|x| x.shortname == v && x.id != id) {
            return Updated::refused((
                "shortnametaken",
                format!("Short name is already used for another course ({v})"),
            ));
        }
        c.shortname = v.into();
    }
    if let Some(v) = text("idnumber") {
        if !v.is_empty()
            && v != current.idnumber
            && s.courses.values().any(|x| x.idnumber == v && x.id != id)
        {
            return Updated::refused((
                "courseidnumbertaken",
                format!("ID number is already used for another course ({v})"),
            ));
        }
        c.idnumber = v.into();
    }
    if let Some(code) = date_error(int("startdate"), int("enddate")) {
        return Updated::refused(code);
    }
    if let Some(v) = int("startdate") {
        c.startdate = v;
    }
    if let Some(v) = int("enddate") {
        c.enddate = v;
    }
    if let Some(v) = text("fullname") {
        c.fullname = v.into();
    }
    let visible = int("visible").map(|v| v != 0);
    if let Some(v) = visible {
        c.visible = v;
    }
    let mut warning = None;
    if let Some(v) = int("categoryid") {
        if v != current.categoryid && !s.categories.contains_key(&v) {
            if visible.is_none_or(|v| v == current.visible) {
                c.visible = false;
            }
            warning = Some(missing_record_warning("course_categories", ctx.version));
        }
        c.categoryid = v;
    }
    Updated {
        written: Some(c),
        warning,
    }
}

/// `course_validate_dates()` on the item as sent, never on the stored dates (observed on 4.4: a
/// start date alone after the stored end date is written; an end date alone is refused even
/// when the stored start date is earlier). Checked after the shortname and idnumber, before the
/// category.
fn date_error(start: Option<i64>, end: Option<i64>) -> Option<(&'static str, String)> {
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
    if start != 0 && end != 0 && end < start {
        Some((
            "enddatebeforestartdate",
            "The course end date must be after the start date.".into(),
        ))
    } else if start == 0 && end != 0 {
        Some((
            "nostartdatenoenddate",
            "A course end date can only be set if a start date is also set.".into(),
        ))
    } else {
        None
    }
}

/// `core_course_delete_courses`: in order, no transaction (what was deleted before a problem
/// stays deleted); the front page cannot be deleted, and a course left in a category that does
/// not exist (see [`update_one`]) fails the call with a missing record (observed).
pub(super) fn delete(s: &mut SimState, p: Obj<'_>) -> Result<Value, WsError> {
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
    for id in ids {
        let orphan = s
            .courses
            .get(&id)
            .is_some_and(|c| id != SITE_COURSE_ID && !s.categories.contains_key(&c.categoryid));
        if orphan {
            return Err(WsError::invalid_record("course_categories"));
        }
        if id == SITE_COURSE_ID && s.courses.contains_key(&id) {
            warnings.push(warning(
                id,
                "cannotdeletecategorycourse",
                format!("Course {id} failed to be deleted"),
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

/// `core_course_get_categories`.
pub(super) fn categories(s: &SimState, p: Obj<'_>) -> Result<Value, WsError> {
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
                "moodle_exception",
                "criteriaerror",
                "Missing permissions to search on a criterion.",
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
            json!({"id": c.id, "name": c.name, "idnumber": "", "description": "", "descriptionformat": 0,
                   "parent": c.parent, "sortorder": c.id * 10000, "coursecount": count, "visible": 1,
                   "visibleold": 1, "timemodified": 0, "depth": 1, "path": format!("/{}", c.id), "theme": ""})
        })
        .collect();
    Ok(Value::Array(out))
}
