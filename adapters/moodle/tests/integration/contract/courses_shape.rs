//! Shaping a duplicated course per environment (issue 12): what a duplicate inherits, and
//! `core_course_update_courses` setting idnumber, names, dates and category, with the warnings
//! and their order as the 4.4 lab answered them. Categories 3 "Runs" and 4 "Archive" have the
//! same ids on the lab and the simulator.

use crate::common::{suffix, targets, Target};
use crate::contract::{cleanup, missing_code, new_course};
use moodle::*;

const RUNS: i64 = 3;
const ARCHIVE: i64 = 4;
const START: i64 = 1_800_000_000;
const END: i64 = 1_810_000_000;

async fn get(t: &Target, c: &MoodleClient, id: i64) -> Course {
    let mut found = c
        .get_courses_by_field(CourseField::Id, &id.to_string())
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{}: course {id}", t.name);
    found.remove(0)
}

/// The one warning of an update of one course, as (code, message).
async fn warn_of(c: &MoodleClient, u: CourseUpdate) -> Option<(String, String)> {
    let w = c.update_courses(&[u]).await.unwrap();
    assert!(w.len() <= 1, "{w:?}");
    w.into_iter().next().map(|w| (w.warningcode, w.message))
}

#[tokio::test]
async fn duplicate_keeps_the_templates_dates_not_its_idnumber() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let a = new_course(&t, &c, &s).await;
        let fresh = get(&t, &c, a.id).await;
        assert_eq!(fresh.idnumber.as_deref(), Some(""), "{}", t.name);
        let shaped = CourseUpdate {
            id: a.id,
            idnumber: Some(format!("OVLE-ID-{s}")),
            startdate: Some(START),
            enddate: Some(END),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, shaped).await, None, "{}", t.name);
        let b = c
            .duplicate_course(&DuplicateCourse {
                template_id: a.id,
                fullname: format!("OVLE copy {s}"),
                shortname: format!("OVLE-C-{s}"),
                category_id: ARCHIVE,
                visible: false,
            })
            .await
            .unwrap();
        let copy = get(&t, &c, b.id).await;
        assert_eq!(copy.idnumber.as_deref(), Some(""), "{}", t.name);
        assert_eq!(
            (copy.startdate, copy.enddate),
            (Some(START), Some(END)),
            "{}",
            t.name
        );
        assert_eq!(
            (copy.categoryid, copy.visible),
            (ARCHIVE, Some(false)),
            "{}",
            t.name
        );
        cleanup(&t, &c, &[a.id, b.id], &[]).await;
    }
}

#[tokio::test]
async fn update_refusals_write_nothing_of_the_item() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let a = new_course(&t, &c, &s).await;
        let b = new_course(&t, &c, &format!("{s}b")).await;
        let a_id = format!("OVLE-ID-{s}");
        let set = CourseUpdate {
            id: a.id,
            idnumber: Some(a_id.clone()),
            startdate: Some(START),
            enddate: Some(END),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, set).await, None, "{}", t.name);
        let before = get(&t, &c, b.id).await;
        let renamed = || CourseUpdate {
            id: b.id,
            fullname: Some(format!("OVLE renamed {s}")),
            ..Default::default()
        };
        let cases = [
            (
                CourseUpdate {
                    shortname: Some(a.shortname.clone()),
                    ..renamed()
                },
                "shortnametaken",
                format!(
                    "Short name is already used for another course ({})",
                    a.shortname
                ),
            ),
            (
                CourseUpdate {
                    idnumber: Some(a_id.clone()),
                    ..renamed()
                },
                "courseidnumbertaken",
                format!("ID number is already used for another course ({a_id})"),
            ),
            (
                CourseUpdate {
                    startdate: Some(START),
                    enddate: Some(START - 1),
                    ..renamed()
                },
                "enddatebeforestartdate",
                "The course end date must be after the start date.".into(),
            ),
            (
                // The stored start date does not count: an end date needs one in the item.
                CourseUpdate {
                    enddate: Some(END),
                    ..renamed()
                },
                "nostartdatenoenddate",
                "A course end date can only be set if a start date is also set.".into(),
            ),
            (
                // Moodle's order: shortname, idnumber, dates, and the category last.
                CourseUpdate {
                    shortname: Some(a.shortname.clone()),
                    idnumber: Some(a_id.clone()),
                    startdate: Some(START),
                    enddate: Some(1),
                    category_id: Some(99_999_999),
                    ..renamed()
                },
                "shortnametaken",
                format!(
                    "Short name is already used for another course ({})",
                    a.shortname
                ),
            ),
            (
                CourseUpdate {
                    idnumber: Some(a_id.clone()),
                    startdate: Some(START),
                    enddate: Some(1),
                    ..renamed()
                },
                "courseidnumbertaken",
                format!("ID number is already used for another course ({a_id})"),
            ),
            (
                CourseUpdate {
                    startdate: Some(START),
                    enddate: Some(1),
                    category_id: Some(99_999_999),
                    ..renamed()
                },
                "enddatebeforestartdate",
                "The course end date must be after the start date.".into(),
            ),
        ];
        for (u, code, message) in cases {
            let got = warn_of(&c, u.clone()).await;
            assert_eq!(got, Some((code.into(), message)), "{}: {u:?}", t.name);
            assert_eq!(get(&t, &c, b.id).await, before, "{}: {u:?}", t.name);
        }
        cleanup(&t, &c, &[a.id, b.id], &[]).await;
    }
}

#[tokio::test]
async fn shape_move_and_dates() {
    for t in targets().await {
        let c = t.client();
        let s = suffix();
        let a = new_course(&t, &c, &s).await;
        // Everything at once, into category 3.
        let all = CourseUpdate {
            id: a.id,
            fullname: Some(format!("OVLE shaped {s}")),
            shortname: Some(format!("OVLE-S-{s}")),
            idnumber: Some(format!("OVLE-SID-{s}")),
            category_id: Some(RUNS),
            startdate: Some(START),
            enddate: Some(END),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, all).await, None, "{}", t.name);
        let got = get(&t, &c, a.id).await;
        assert_eq!(
            (
                got.fullname.as_str(),
                got.shortname.as_str(),
                got.idnumber.as_deref(),
                got.categoryid,
                got.startdate,
                got.enddate,
                got.visible,
            ),
            (
                format!("OVLE shaped {s}").as_str(),
                format!("OVLE-S-{s}").as_str(),
                Some(format!("OVLE-SID-{s}").as_str()),
                RUNS,
                Some(START),
                Some(END),
                Some(true),
            ),
            "{}",
            t.name
        );
        // Found by its idnumber, dates as numbers.
        let by_idnumber = c
            .get_courses_by_field(CourseField::Idnumber, &format!("OVLE-SID-{s}"))
            .await
            .unwrap();
        assert_eq!(by_idnumber, vec![got.clone()], "{}", t.name);
        // Its own shortname and idnumber again are no conflict.
        let same = CourseUpdate {
            id: a.id,
            shortname: Some(format!("OVLE-S-{s}")),
            idnumber: Some(format!("OVLE-SID-{s}")),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, same).await, None, "{}", t.name);
        // A start date alone after the stored end date is written as it is.
        let late = CourseUpdate {
            id: a.id,
            startdate: Some(END + 1),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, late).await, None, "{}", t.name);
        let got = get(&t, &c, a.id).await;
        assert_eq!((got.startdate, got.enddate), (Some(END + 1), Some(END)));
        // An end date equal to the start date passes; 0 removes the end date.
        let equal = CourseUpdate {
            id: a.id,
            startdate: Some(START),
            enddate: Some(START),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, equal).await, None, "{}", t.name);
        let open = CourseUpdate {
            id: a.id,
            enddate: Some(0),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, open).await, None, "{}", t.name);
        let got = get(&t, &c, a.id).await;
        assert_eq!((got.startdate, got.enddate), (Some(START), Some(0)));
        // The move to the archive keeps the visibility.
        let archive = CourseUpdate {
            id: a.id,
            category_id: Some(ARCHIVE),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, archive).await, None, "{}", t.name);
        let got = get(&t, &c, a.id).await;
        assert_eq!((got.categoryid, got.visible), (ARCHIVE, Some(true)));
        // A missing category: the warning, with the other fields of the item written.
        let lost = CourseUpdate {
            id: a.id,
            fullname: Some(format!("OVLE lost {s}")),
            category_id: Some(99_999_999),
            ..Default::default()
        };
        let w = warn_of(&c, lost).await;
        assert_eq!(w.map(|w| w.0), Some(missing_code(&t).into()), "{}", t.name);
        let got = get(&t, &c, a.id).await;
        assert_eq!(got.fullname, format!("OVLE lost {s}"), "{}", t.name);
        let back = CourseUpdate {
            id: a.id,
            category_id: Some(ARCHIVE),
            ..Default::default()
        };
        assert_eq!(warn_of(&c, back).await, None, "{}", t.name);
        cleanup(&t, &c, &[a.id], &[]).await;
    }
}

#[tokio::test]
async fn runs_and_archive_categories() {
    for t in targets().await {
        let c = t.client();
        for (id, name) in [(RUNS, "Runs"), (ARCHIVE, "Archive")] {
            let cats = c.get_categories(&[("id", &id.to_string())]).await.unwrap();
            assert_eq!(cats.len(), 1, "{}", t.name);
            assert_eq!((cats[0].id, cats[0].name.as_str()), (id, name));
            assert_eq!(cats[0].parent, 0);
        }
        assert!(c
            .get_categories(&[("id", "99999999")])
            .await
            .unwrap()
            .is_empty());
    }
}
