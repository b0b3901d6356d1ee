//! Typed requests and responses of the functions the engine uses.
//!
//! Responses tolerate unknown fields (Moodle adds fields between releases) and use `Option` for
//! fields that depend on the caller's capabilities or the release.

use serde::{Deserialize, Deserializer, Serialize};

mod changes;
mod users;
pub use changes::{RoleUnassignment, UserUpdate};
pub use users::*;

/// Answer of `core_webservice_get_site_info`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SiteInfo {
    /// Site name.
    pub sitename: String,
    /// The web-service user's username.
    pub username: String,
    /// The web-service user's id.
    pub userid: i64,
    /// Human release, e.g. `4.4 (Build: 20240422)` (token calls only).
    #[serde(default)]
    pub release: Option<String>,
    /// Version number, e.g. `2024042200`.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub version: Option<String>,
    /// Functions of the token's external service.
    #[serde(default)]
    pub functions: Vec<FunctionInfo>,
    /// The front page's course id (1 on every site seen).
    #[serde(default, deserialize_with = "de_opt_int")]
    pub siteid: Option<i64>,
    /// Whether the token's user is a site administrator (who bypasses every capability check).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub userissiteadmin: Option<bool>,
}

/// One item of `core_enrol_get_course_enrolment_methods`: an enabled enrolment instance whose
/// plugin describes itself (`get_enrol_info()`). Moodle 4.4's manual plugin does not, so a
/// manual instance is never listed (read in `enrol/externallib.php`, seen on the lab): the
/// course's `enrollmentmethods` ([`Course::enrollmentmethods`]) is what tells it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct EnrolmentMethod {
    /// Instance id.
    pub id: i64,
    /// Course id.
    #[serde(default)]
    pub courseid: i64,
    /// Plugin, e.g. `self`, `guest`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Instance name.
    #[serde(default)]
    pub name: String,
    /// What the plugin says of its status (PARAM_RAW: `true`, `1`, or a reason it is closed).
    #[serde(default, deserialize_with = "de_opt_scalar")]
    pub status: Option<String>,
}

/// One function of the token's service.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct FunctionInfo {
    /// Function name.
    pub name: String,
    /// Its version (a Moodle version string).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub version: Option<String>,
}

/// Field for `core_course_get_courses_by_field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CourseField {
    /// One id.
    Id,
    /// Comma-separated ids. Moodle 4.4 fails the whole call with a PHP `Error` (a body without
    /// errorcode) when one of them does not exist, and with `dmlreadexception` on an empty item.
    Ids,
    /// Exact short name.
    Shortname,
    /// Exact idnumber (never empty: Moodle would return every course without one).
    Idnumber,
    /// Direct children of a category id.
    Category,
}

impl CourseField {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CourseField::Id => "id",
            CourseField::Ids => "ids",
            CourseField::Shortname => "shortname",
            CourseField::Idnumber => "idnumber",
            CourseField::Category => "category",
        }
    }
}

/// A course as returned by the course look-ups.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct Course {
    /// Course id.
    pub id: i64,
    /// Short name (unique per site).
    pub shortname: String,
    /// Full name.
    pub fullname: String,
    /// Category id.
    #[serde(default)]
    pub categoryid: i64,
    /// Visibility (Moodle sends 0/1; absent when the caller cannot see it).
    #[serde(default, deserialize_with = "de_opt_bool")]
    pub visible: Option<bool>,
    /// idnumber (managers only).
    #[serde(default, deserialize_with = "de_opt_string")]
    pub idnumber: Option<String>,
    /// The enabled enrolment methods (`["manual"]`). Empty on the skeleton a duplication
    /// inserts before its restore (observed on 4.4), hence a sign that the course is whole.
    #[serde(default)]
    pub enrollmentmethods: Vec<String>,
    /// Start date, unix seconds (0 = none). A duplicate gets its template's dates (observed on
    /// the 4.4 lab), so the engine sets its own after duplicating.
    #[serde(default, deserialize_with = "de_opt_int")]
    pub startdate: Option<i64>,
    /// End date, unix seconds (0 = no end date).
    #[serde(default, deserialize_with = "de_opt_int")]
    pub enddate: Option<i64>,
}

#[derive(Deserialize)]
pub(crate) struct CoursesEnvelope {
    #[serde(default)]
    pub courses: Vec<Course>,
}

/// Answer of `core_course_search_courses`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct CourseSearch {
    /// Total matches (all pages).
    #[serde(default)]
    pub total: i64,
    /// This page.
    #[serde(default)]
    pub courses: Vec<Course>,
}

/// Arguments of `core_course_duplicate_course`. No `options` are sent: `users=0` needs
/// `moodle/backup:userinfo` on a real site (observed), and the defaults already leave users out.
#[derive(Clone, Debug, PartialEq)]
pub struct DuplicateCourse {
    /// Template course id.
    pub template_id: i64,
    /// New full name.
    pub fullname: String,
    /// New short name (the engine's idempotency key).
    pub shortname: String,
    /// Target category id.
    pub category_id: i64,
    /// Visible to students.
    pub visible: bool,
}

/// Answer of `core_course_duplicate_course`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct DuplicatedCourse {
    /// New course id.
    pub id: i64,
    /// Its short name.
    pub shortname: String,
}

/// One item of `core_course_update_courses`; `None` fields are not sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CourseUpdate {
    /// Course id.
    pub id: i64,
    /// New visibility.
    pub visible: Option<bool>,
    /// New full name.
    pub fullname: Option<String>,
    /// New idnumber. A duplicate starts with an empty one (not the template's: observed on 4.4);
    /// one another course holds is refused with warning `courseidnumbertaken`.
    pub idnumber: Option<String>,
    /// New short name; one another course holds is refused with warning `shortnametaken`.
    pub shortname: Option<String>,
    /// New category (moving a course, e.g. to an archive category). A category that does not
    /// exist is a missing-record warning, but Moodle has already written the course, hidden.
    pub category_id: Option<i64>,
    /// New start date, unix seconds. Sent alone it is never checked against the stored end
    /// date (4.4 accepted a start after the end).
    pub startdate: Option<i64>,
    /// New end date, unix seconds, 0 = none. Moodle checks the dates of the item only, not the
    /// stored ones: an end date sent without a start date is refused (`nostartdatenoenddate`),
    /// one before the start date sent with it too (`enddatebeforestartdate`).
    pub enddate: Option<i64>,
}

/// A per-item warning (`external_warnings`): the call succeeded, this item did not.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Warning {
    /// Item kind, e.g. `course`.
    #[serde(default, deserialize_with = "de_bounded_opt")]
    pub item: Option<String>,
    /// Item id.
    #[serde(default)]
    pub itemid: Option<i64>,
    /// Code, e.g. `unknowncourseidnumber`, `invalidrecord` (5.1: `invalidrecordunknown`),
    /// `shortnametaken`.
    #[serde(deserialize_with = "de_bounded")]
    pub warningcode: String,
    /// Localised message.
    #[serde(default, deserialize_with = "de_bounded")]
    pub message: String,
}

/// A warning's texts are cut as an error's are (`MAX_ERROR_TEXT`), as they are read: a hostile
/// or broken server must not push megabytes into the saga's records and logs through the
/// warnings of a successful answer.
fn de_bounded<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(crate::error::bounded)
}

fn de_bounded_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(crate::error::bounded))
}

impl Warning {
    /// The item's record does not exist: `invalidrecord` on 4.4 (e.g. updating a missing
    /// course), `invalidrecordunknown` on 5.1, `invaliduserid` from `core_user_update_users`.
    pub fn is_missing_record(&self) -> bool {
        matches!(
            self.warningcode.as_str(),
            "invalidrecord" | "invalidrecordunknown" | "invaliduserid"
        )
    }
}

#[derive(Deserialize)]
pub(crate) struct WarningsEnvelope {
    #[serde(default)]
    pub warnings: Vec<Warning>,
}

/// A course category.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Category {
    /// Category id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Parent id (0 = top).
    #[serde(default)]
    pub parent: i64,
    /// Courses directly in it.
    #[serde(default)]
    pub coursecount: i64,
}

fn de_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::Number(n) => Some(n.as_f64().unwrap_or(0.0) != 0.0),
        serde_json::Value::String(s) => Some(!matches!(s.as_str(), "" | "0" | "false")),
        _ => None,
    })
}

fn de_opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn de_opt_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(de_opt_string(d)?.filter(|s| !s.is_empty()))
}

fn de_opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn de_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_course_parsing() {
        let c: Course = serde_json::from_str(
            r#"{"id":3,"shortname":"S","fullname":"F","categoryid":2,"visible":1,"idnumber":"","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(c.visible, Some(true));
        let c: Course =
            serde_json::from_str(r#"{"id":3,"shortname":"S","fullname":"F","visible":false}"#)
                .unwrap();
        assert_eq!(c.visible, Some(false));
        assert_eq!(c.idnumber, None);
        assert_eq!((c.startdate, c.enddate), (None, None));
        let c: Course = serde_json::from_str(
            r#"{"id":3,"shortname":"S","fullname":"F","startdate":1800000000,"enddate":"0"}"#,
        )
        .unwrap();
        assert_eq!((c.startdate, c.enddate), (Some(1_800_000_000), Some(0)));
        let s: SiteInfo = serde_json::from_str(
            r#"{"sitename":"x","username":"ws","userid":3,"version":2024042200,"functions":[{"name":"a","version":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(s.version.as_deref(), Some("2024042200"));
    }
}
