//! What a duplication looks like from outside while it runs: a real Moodle backs the template
//! up, only then creates the course (hidden, with the requested names), renames it after the
//! template while restoring into it, and sets the requested names back at the very end. A
//! look-up by shortname in the meantime may find nothing, which is why the engine cannot tell
//! a duplication still under way from one that never started.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{suffix, targets};
use crate::contract::cleanup;
use moodle::*;

/// How the new course looked when seen, in the order Moodle goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    /// Not there yet (the backup).
    Absent,
    /// The course row just created: the requested names, hidden.
    Skeleton,
    /// Being restored: named after the template (`<shortname>_N`, "<fullname> copy N"), with
    /// the template's visibility.
    Restoring,
    /// The requested names and visibility.
    Finished,
}

#[tokio::test]
async fn a_duplication_goes_through_moodles_phases() {
    for t in targets().await {
        if let Some(sim) = &t.sim {
            // Long enough for each phase to be seen several times.
            sim.update_faults(|f| f.duplicate_latency_ms = 1500);
        }
        let c = t.client();
        let s = suffix();
        let template = c
            .get_courses_by_field(CourseField::Id, &t.template.to_string())
            .await
            .unwrap()
            .remove(0);
        // A real site fails a category listing with a missing `course` record when one of its
        // courses is deleted meanwhile (other tests share the category): such a look is skipped.
        let in_category = || async {
            c.get_courses_by_field(CourseField::Category, &t.category.to_string())
                .await
                .inspect_err(|e| assert!(e.is_missing_course(), "{}: {e}", t.name))
                .ok()
        };
        let mut before = None;
        while before.is_none() {
            before = in_category().await;
        }
        let before: BTreeSet<i64> = before.unwrap_or_default().iter().map(|x| x.id).collect();
        let req = DuplicateCourse {
            template_id: t.template,
            fullname: format!("OVLE phases {s}"),
            shortname: format!("OVLE-P-{s}"),
            category_id: t.category,
            visible: true,
        };
        let call = {
            let (c, req) = (c.clone(), req.clone());
            tokio::spawn(async move { c.duplicate_course(&req).await })
        };
        // Every look at the category until the call answered: the courses new in it.
        let mut looks: Vec<Vec<Course>> = Vec::new();
        while !call.is_finished() {
            if let Some(now) = in_category().await {
                looks.push(
                    now.into_iter()
                        .filter(|x| !before.contains(&x.id))
                        .collect(),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let course = call
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        let phase = |x: &Course| {
            if x.shortname == req.shortname && x.fullname == req.fullname {
                if x.visible == Some(true) {
                    Seen::Finished
                } else {
                    Seen::Skeleton
                }
            } else if x.shortname.starts_with(&format!("{}_", template.shortname))
                && x.fullname
                    .starts_with(&format!("{} copy ", template.fullname))
                && x.visible == template.visible
            {
                Seen::Restoring
            } else {
                panic!("{}: the new course looked like {x:?}", t.name)
            }
        };
        let phases: Vec<Seen> = looks
            .iter()
            .map(|new| {
                new.iter()
                    .find(|x| x.id == course.id)
                    .map_or(Seen::Absent, phase)
            })
            .collect();
        assert!(
            phases.windows(2).all(|w| w[0] <= w[1]),
            "{}: phases went back: {phases:?}",
            t.name
        );
        if t.sim.is_some() {
            // The simulator's phases are long enough for each to be seen, in order.
            for p in [Seen::Absent, Seen::Skeleton, Seen::Restoring] {
                assert!(
                    phases.contains(&p),
                    "{}: {p:?} never seen: {phases:?}",
                    t.name
                );
            }
            assert_eq!(phases.first(), Some(&Seen::Absent), "{}", t.name);
        }
        let done = c
            .get_courses_by_field(CourseField::Shortname, &req.shortname)
            .await
            .unwrap();
        assert_eq!(done.len(), 1, "{}", t.name);
        assert_eq!((done[0].id, done[0].visible), (course.id, Some(true)));
        assert_eq!(done[0].fullname, req.fullname);
        cleanup(&t, &c, &[course.id], &[]).await;
    }
}
