//! The simulator's duplication as a real Moodle runs it (see `moodle_sim` and its duplicate
//! module): nothing during the backup, the hidden skeleton, the restore under the template's
//! names, the end; and two overlapping backups of one template clashing on its backup file.

use crate::common;

use std::time::Duration;

use common::sim_target;
use moodle::*;
use moodle_sim::SimConfig;

#[tokio::test]
async fn duplicate_timeout_leaves_a_course_to_find_later() {
    let t = sim_target(SimConfig::default()).await;
    t.sim().update_faults(|f| f.duplicate_latency_ms = 300);
    let c = t.client_with(ClientOptions {
        duplicate_timeout: Duration::from_millis(50),
        ..Default::default()
    });
    let req = DuplicateCourse {
        template_id: t.template,
        fullname: "Slow".into(),
        shortname: "OVLE-SLOW".into(),
        category_id: t.category,
        visible: true,
    };
    let e = c.duplicate_course(&req).await.unwrap_err();
    assert!(e.outcome_unknown());
    // Still backing up: no course yet (as on a real Moodle), and Moodle carries on after the
    // client gave up.
    let found = c
        .get_courses_by_field(CourseField::Shortname, "OVLE-SLOW")
        .await
        .unwrap();
    assert!(found.is_empty(), "{found:?}");
    let mut seen = Vec::new();
    for _ in 0..100 {
        let s = t.sim().snapshot();
        let new: Vec<_> = s.courses.values().filter(|x| x.id >= 3).cloned().collect();
        if let Some(x) = new.first() {
            let phase = (x.shortname.clone(), x.visible, x.manual_enrol);
            if seen.last() != Some(&phase) {
                seen.push(phase);
            }
            if x.shortname == "OVLE-SLOW" && x.visible {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen,
        [
            ("OVLE-SLOW".to_string(), false, false),
            ("TEMPLATE-101_1".to_string(), true, true),
            ("OVLE-SLOW".to_string(), true, true),
        ]
    );
    assert_eq!(
        c.duplicate_course(&req).await.unwrap_err().code(),
        "shortnametaken"
    );
}

#[tokio::test]
async fn overlapping_backups_of_one_template_clash() {
    let t = sim_target(SimConfig::default()).await;
    t.sim().update_faults(|f| {
        f.duplicate_latency_ms = 200;
        f.backup_clash_rate = 1.0;
    });
    let c = t.client();
    let req = |n: u32| DuplicateCourse {
        template_id: t.template,
        fullname: format!("Clash {n}"),
        shortname: format!("OVLE-CLASH-{n}"),
        category_id: t.category,
        visible: true,
    };
    let first = {
        let (c, r) = (c.clone(), req(1));
        tokio::spawn(async move { c.duplicate_course(&r).await })
    };
    // The second starts 30 ms later: its backup ends (at 150 ms) while the first one's file is
    // there (from 120 to 200 ms).
    tokio::time::sleep(Duration::from_millis(30)).await;
    let e = c.duplicate_course(&req(2)).await.unwrap_err();
    assert_eq!(e.code(), "storedfilenotcreated");
    assert!(e.is_transient() && !e.outcome_unknown());
    assert!(e
        .to_string()
        .contains("Cannot create file 14/backup/course/0/backup.mbz"));
    first.await.unwrap().unwrap();
    // Nothing was left by the failed one, and once the first is done the retry works.
    assert_eq!(t.sim().snapshot().next_course_id, 4);
    c.duplicate_course(&req(2)).await.unwrap();
    // Off (the default), overlapping duplications all succeed.
    t.sim().update_faults(|f| f.backup_clash_rate = 0.0);
    let a = {
        let (c, r) = (c.clone(), req(3));
        tokio::spawn(async move { c.duplicate_course(&r).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    c.duplicate_course(&req(4)).await.unwrap();
    a.await.unwrap().unwrap();
}
