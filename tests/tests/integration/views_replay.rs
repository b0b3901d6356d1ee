//! Read models (openvle-views): the live projector, replay (rebuild from position 0 into
//! shadow tables, swap, catch up) and the audit story, on SQLite and (with OPENVLE_TEST_PG)
//! PostgreSQL.

use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, VleEvent};
use domain::moodle_sync::{LinkKind, MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use domain::participant::ParticipantInput;
use projections::saga::SagaSettings;
use projections::view::{EventFold, EventView};
use store::{CommandMeta, Store};
use uuid::Uuid;
use views::story::StoryFilter;
use views::{Projector, ProjectorOptions, ReplayOptions, ReplayPhase};

use support::{both_backends, Backend, TestDb};

/// A fresh migrated store (the one test-database helper, `store::testing`).
async fn open(backend: Backend) -> Option<TestDb> {
    TestDb::create(backend).await
}

fn meta() -> CommandMeta {
    CommandMeta::new("views-test")
}

fn person(id: &str, role: &str) -> ParticipantInput {
    ParticipantInput {
        idnumber: None,
        id: id.into(),
        email: format!("{id}@x.org"),
        username: None,
        first_name: "F".into(),
        last_name: "L".into(),
        role: role.into(),
    }
}

async fn put_env(store: &Store, id: &str, template: Option<i64>) {
    store
        .execute::<Environment>(
            id,
            EnvironmentCommand::Put {
                course: Default::default(),
                id: id.into(),
                name: format!("Env {id}"),
                moodle_template_course_id: template,
            },
            &meta(),
        )
        .await
        .expect("put environment");
}

async fn event(store: &Store, id: &str, cmd: EventCommand) {
    store
        .execute::<VleEvent>(id, cmd, &meta())
        .await
        .expect("event command");
}

async fn deploy(store: &Store, id: &str, env: &str, people: Vec<ParticipantInput>) {
    let environment = store
        .load::<Environment>(env)
        .await
        .expect("load env")
        .map(|(e, _)| e);
    event(
        store,
        id,
        EventCommand::Deploy {
            context: Default::default(),
            schedule: Default::default(),
            id: id.into(),
            environment_id: env.into(),
            name: format!("Event {id}"),
            participants: people,
            environment,
        },
    )
    .await;
}

async fn record(store: &Store, id: &str, events: Vec<MoodleSyncEvent>) {
    store
        .execute::<MoodleSync>(id, MoodleSyncCommand::Record(events), &meta())
        .await
        .expect("saga record");
}

fn enrolled(p: &str, user: i64, role: i64) -> MoodleSyncEvent {
    MoodleSyncEvent::Enrolled {
        participant_id: p.into(),
        moodle_user_id: user,
        role_id: role,
        caused_by: Uuid::nil(),
    }
}

fn course(id: &str, course_id: i64) -> MoodleSyncEvent {
    MoodleSyncEvent::CourseDuplicated {
        course_id,
        shortname: format!("ovle-{id}"),
        template_course_id: 2,
        category_id: 1,
        adopted: false,
        caused_by: Uuid::nil(),
    }
}

/// A varied history: linked and unlinked environments, enrolments, failures, parking and
/// resume, a removal, an end and a delete, with streams interleaved. `step` is called after
/// every command (the live projector catching up).
async fn write_history<F, Fut>(store: &Store, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    put_env(store, "env-linked", Some(2)).await;
    step().await;
    put_env(store, "env-plain", None).await;
    step().await;
    deploy(
        store,
        "ev-a",
        "env-linked",
        vec![person("t1", "instructor"), person("s1", "student")],
    )
    .await;
    step().await;
    deploy(store, "ev-b", "env-linked", vec![person("s2", "student")]).await;
    step().await;
    deploy(store, "ev-c", "env-plain", vec![person("s3", "student")]).await;
    step().await;
    record(store, "ev-a", vec![course("ev-a", 17)]).await;
    step().await;
    record(
        store,
        "ev-b",
        vec![MoodleSyncEvent::StepFailed {
            step: "duplicate_course".into(),
            code: "timeout".into(),
            message: "timed out".into(),
            attempt: 1,
            transient: true,
            participant_id: None,
            caused_by: Uuid::nil(),
        }],
    )
    .await;
    step().await;
    record(
        store,
        "ev-a",
        vec![
            MoodleSyncEvent::UserLinked {
                differs: None,
                key: None,
                participant_id: "t1".into(),
                moodle_user_id: 40,
                username: "t1".into(),
                how: LinkKind::Matched,
                caused_by: Uuid::nil(),
            },
            enrolled("t1", 40, 3),
            enrolled("s1", 41, 5),
        ],
    )
    .await;
    step().await;
    event(
        store,
        "ev-a",
        EventCommand::AddParticipant {
            participant: person("p2", "student"),
        },
    )
    .await;
    step().await;
    record(
        store,
        "ev-b",
        vec![course("ev-b", 18), enrolled("s2", 42, 5)],
    )
    .await;
    step().await;
    record(
        store,
        "ev-a",
        vec![MoodleSyncEvent::ParticipantParked {
            participant_id: "p2".into(),
            code: "invalid_username".into(),
            reason: "bad username".into(),
            caused_by: Uuid::nil(),
        }],
    )
    .await;
    step().await;
    store
        .execute::<MoodleSync>(
            "ev-a",
            MoodleSyncCommand::Resume { by: "op".into() },
            &meta(),
        )
        .await
        .expect("resume");
    step().await;
    record(store, "ev-a", vec![enrolled("p2", 43, 5)]).await;
    step().await;
    event(
        store,
        "ev-a",
        EventCommand::RemoveParticipant {
            participant_id: "s1".into(),
        },
    )
    .await;
    step().await;
    event(store, "ev-b", EventCommand::End).await;
    step().await;
    record(
        store,
        "ev-b",
        vec![
            MoodleSyncEvent::Unenrolled {
                participant_id: "s2".into(),
                moodle_user_id: 42,
                caused_by: Uuid::nil(),
            },
            MoodleSyncEvent::CourseHidden {
                course_id: 18,
                caused_by: Uuid::nil(),
            },
        ],
    )
    .await;
    step().await;
    event(store, "ev-c", EventCommand::End).await;
    step().await;
    event(store, "ev-c", EventCommand::Delete).await;
    step().await;
    // Saga facts for an event never deployed: indexed, but no view.
    record(
        store,
        "ev-ghost",
        vec![MoodleSyncEvent::Resumed { by: "op".into() }],
    )
    .await;
    step().await;
}

fn settings() -> SagaSettings {
    SagaSettings::enabled(1)
}

/// The view the API computes on demand (fold of both streams), for comparison.
async fn folded_view(store: &Store, id: &str) -> Option<EventView> {
    let mut fold = EventFold::new();
    for e in store.read_event_history(id).await.expect("history") {
        match e.aggregate_type.as_str() {
            "event" => fold.apply_event(e.decode::<VleEvent>().expect("decode")),
            "moodle_sync" => {
                fold.apply_sync(e.decode::<MoodleSync>().expect("decode"), e.recorded_at)
            }
            _ => {}
        }
    }
    fold.view(&settings())
}

async fn live_views_equal_replayed_views(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = &db.store;
    // A tiny page and cache: the live build pages, evicts and refolds from the log.
    let projector = std::sync::Arc::new(tokio::sync::Mutex::new(Projector::new(
        store,
        settings(),
        ProjectorOptions {
            page_size: 2,
            cache_capacity: 1,
            ..ProjectorOptions::default()
        },
    )));
    write_history(store, || {
        let p = projector.clone();
        async move {
            p.lock().await.catch_up().await.expect("live catch-up");
        }
    })
    .await;
    let head = store.head().await.expect("head");
    let live = views::read::snapshot(store).await.expect("snapshot");
    assert_eq!(live.checkpoint, head);
    assert_eq!(
        live.event_views.len(),
        3,
        "ev-a, ev-b, ev-c (not the ghost)"
    );
    assert_eq!(live.moodle_courses.len(), 3);
    let history_rows: usize = {
        let mut n = 0;
        for id in ["ev-a", "ev-b", "ev-c", "ev-ghost"] {
            n += store.read_event_history(id).await.expect("history").len();
        }
        n
    };
    assert_eq!(live.audit_index.len(), history_rows);

    // The stored views are the API's on-demand fold.
    for id in ["ev-a", "ev-b", "ev-c"] {
        let stored = views::read::event_view(store, id).await.expect("view");
        assert_eq!(stored, folded_view(store, id).await, "{id}");
    }
    let a = views::read::moodle_course(store, "ev-a")
        .await
        .expect("course")
        .expect("ev-a has a course row");
    assert_eq!(a.course_id, Some(17));
    assert_eq!(a.shortname.as_deref(), Some("ovle-ev-a"));
    assert_eq!(a.visible, Some(true));
    assert_eq!(a.state, "pending", "s1 removed but still enrolled: {a:?}");
    assert_eq!(a.enrolled, 3);
    let c = views::read::moodle_course(store, "ev-c")
        .await
        .expect("course")
        .expect("ev-c row");
    assert_eq!(c.state, "not_linked");
    assert_eq!(c.course_id, None);

    // Replay into shadow tables and swap: identical.
    let mut phases = Vec::new();
    let report = views::replay(store, &settings(), &ReplayOptions::default(), |p| {
        phases.push(p.phase)
    })
    .await
    .expect("replay");
    assert_eq!(report.events as i64, head);
    assert_eq!(report.shadow_end, head);
    assert_eq!(report.caught_up, 0);
    assert_eq!(phases.first(), Some(&ReplayPhase::Building));
    assert_eq!(phases.last(), Some(&ReplayPhase::Done));
    let replayed = views::read::snapshot(store).await.expect("snapshot");
    assert_eq!(replayed, live);

    // Delete every read-model row: replay restores them identical.
    views::read::clear(store).await.expect("clear");
    let empty = views::read::snapshot(store).await.expect("snapshot");
    assert!(empty.event_views.is_empty() && empty.audit_index.is_empty());
    assert_eq!(empty.checkpoint, 0);
    views::replay(
        store,
        &settings(),
        &ReplayOptions {
            page_size: 1,
            cache_capacity: 1,
        },
        |_| {},
    )
    .await
    .expect("replay after clear");
    assert_eq!(views::read::snapshot(store).await.expect("snapshot"), live);

    // And the plain catch-up from zero builds the same.
    views::read::clear(store).await.expect("clear");
    assert_eq!(
        views::catch_up(store, &settings()).await.expect("catch up") as i64,
        head
    );
    assert_eq!(views::read::snapshot(store).await.expect("snapshot"), live);
    // Nothing more to do.
    assert_eq!(
        views::catch_up(store, &settings()).await.expect("catch up"),
        0
    );
    store.close().await;
}

async fn changed_settings_rebuild_the_views(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = &db.store;
    write_history(store, || async {}).await;
    views::catch_up(store, &SagaSettings::disabled())
        .await
        .expect("catch up");
    let v = views::read::event_view(store, "ev-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.moodle.state, projections::view::MoodleState::Disabled);
    // The same views under other settings are rebuilt, not patched.
    views::catch_up(store, &settings()).await.expect("catch up");
    let v = views::read::event_view(store, "ev-a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(v), folded_view(store, "ev-a").await);
    store.close().await;
}

async fn replay_while_serving(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = db.store.clone();
    write_history(&store, || async {}).await;
    // A live projector follows the log while events keep arriving and a replay runs.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let live = tokio::spawn(views::run_projector(
        store.clone(),
        settings(),
        ProjectorOptions {
            page_size: 3,
            cache_capacity: 2,
            poll_interval: std::time::Duration::from_millis(5),
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let id = format!("ev-live-{}", i % 5);
                if i < 5 {
                    deploy(&store, &id, "env-linked", vec![person("s", "student")]).await;
                } else {
                    event(
                        &store,
                        &id,
                        EventCommand::AddParticipant {
                            participant: person(&format!("q{i}"), "student"),
                        },
                    )
                    .await;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for _ in 0..3 {
        views::replay(
            &store,
            &settings(),
            &ReplayOptions {
                page_size: 4,
                cache_capacity: 3,
            },
            |_| {},
        )
        .await
        .expect("replay while serving");
    }
    writer.await.expect("writer");
    // Let the live projector reach the head, then stop it.
    let head = store.head().await.expect("head");
    for _ in 0..500 {
        if views::read::checkpoint(&store).await.expect("checkpoint") >= head {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(());
    live.await.expect("projector task");
    let served = views::read::snapshot(&store).await.expect("snapshot");
    assert_eq!(served.checkpoint, head);
    views::read::clear(&store).await.expect("clear");
    views::replay(&store, &settings(), &ReplayOptions::default(), |_| {})
        .await
        .expect("final replay");
    assert_eq!(
        views::read::snapshot(&store).await.expect("snapshot"),
        served
    );
    for i in 0..5 {
        let id = format!("ev-live-{i}");
        assert_eq!(
            views::read::event_view(&store, &id).await.expect("view"),
            folded_view(&store, &id).await
        );
    }
    store.close().await;
}

async fn story_interleaves_both_streams(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = &db.store;
    write_history(store, || async {}).await;
    // Not indexed yet (from the log), fully indexed (from the index), and indexed plus a tail
    // appended after the checkpoint (both).
    let mut p = Projector::new(store, settings(), ProjectorOptions::default());
    for round in 0..3 {
        if round == 1 {
            p.catch_up().await.expect("catch up");
        }
        if round == 2 {
            record(
                store,
                "ev-a",
                vec![MoodleSyncEvent::Resumed { by: "late".into() }],
            )
            .await;
        }
        let history = store.read_event_history("ev-a").await.expect("history");
        let mut got = Vec::new();
        let shown = views::event_story(store, "ev-a", &StoryFilter::default(), |e| {
            got.push(e.clone());
            Ok(())
        })
        .await
        .expect("story");
        assert_eq!(shown as usize, history.len());
        assert_eq!(got, history, "round {round}");
    }
    let history = store.read_event_history("ev-a").await.expect("history");
    let lines: Vec<String> = history.iter().map(views::story::line).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("participant p2 (student, p2@x.org) added")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("course 17 duplicated from template 2 (shortname ovle-ev-a")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("enrolled p2 as role 5")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("resumed by op")),
        "{lines:#?}"
    );

    let filter = StoryFilter::parse(Some("Enrolled"), None, None).expect("filter");
    let mut types = Vec::new();
    views::event_story(store, "ev-a", &filter, |e| {
        types.push(e.event_type.clone());
        Ok(())
    })
    .await
    .expect("story");
    assert_eq!(types, vec!["Enrolled"; 3]);
    let later = StoryFilter::parse(None, Some("2999-01-01T00:00:00Z"), None).expect("filter");
    assert_eq!(
        views::event_story(store, "ev-a", &later, |_| Ok(()))
            .await
            .expect("story"),
        0
    );
    // Only the OpenVLE event's streams: an environment with the same id would not show.
    put_env(store, "ev-a", None).await;
    let mut n = 0;
    views::event_story(store, "ev-a", &StoryFilter::default(), |e| {
        assert_ne!(e.aggregate_type, "environment");
        n += 1;
        Ok(())
    })
    .await
    .expect("story");
    assert_eq!(n, history.len());
    store.close().await;
}

async fn two_projectors_stay_exactly_once(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = &db.store;
    let opts = || ProjectorOptions {
        page_size: 2,
        cache_capacity: 100,
        ..ProjectorOptions::default()
    };
    // Two processes' projectors take turns: each must notice the other advanced the views
    // (its cached folds missed those events) and never apply an event twice.
    let a = std::sync::Arc::new(tokio::sync::Mutex::new(Projector::new(
        store,
        settings(),
        opts(),
    )));
    let b = std::sync::Arc::new(tokio::sync::Mutex::new(Projector::new(
        store,
        settings(),
        opts(),
    )));
    let turn = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    write_history(store, || {
        let (a, b, turn) = (a.clone(), b.clone(), turn.clone());
        async move {
            let n = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = if (n / 3) % 2 == 0 { a } else { b };
            p.lock().await.catch_up().await.expect("catch up");
        }
    })
    .await;
    a.lock().await.catch_up().await.expect("catch up");
    let live = views::read::snapshot(store).await.expect("snapshot");
    views::read::clear(store).await.expect("clear");
    views::replay(store, &settings(), &ReplayOptions::default(), |_| {})
        .await
        .expect("replay");
    assert_eq!(views::read::snapshot(store).await.expect("snapshot"), live);
    store.close().await;
}

/// The view of `id` folded from the whole log with `settings` (what the API did before the
/// read model answered).
async fn folded_view_with(store: &Store, id: &str, settings: &SagaSettings) -> Option<EventView> {
    let mut fold = EventFold::new();
    for e in store.read_event_history(id).await.expect("history") {
        match e.aggregate_type.as_str() {
            "event" => fold.apply_event(e.decode::<VleEvent>().expect("decode")),
            "moodle_sync" => {
                fold.apply_sync(e.decode::<MoodleSync>().expect("decode"), e.recorded_at)
            }
            _ => {}
        }
    }
    fold.view(settings)
}

/// The current view from the read model: stored fold plus tail, rendered with `settings`.
async fn current_view(store: &Store, id: &str, settings: &SagaSettings) -> Option<EventView> {
    views::current_fold(store, id)
        .await
        .expect("current fold")
        .view(settings)
}

/// Runs one statement on the store's pool (tampering with the read model).
async fn exec(store: &Store, sql: &str) {
    match store.pool() {
        store::DbPool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        store::DbPool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
    }
    .expect("statement");
}

async fn current_fold_is_the_stored_fold_plus_the_tail(backend: Backend) {
    let Some(db) = open(backend).await else {
        return;
    };
    let store = &db.store;
    let ids = ["ev-a", "ev-b", "ev-c", "ev-ghost", "never-seen"];
    let all_settings = [
        settings(),
        SagaSettings::disabled(),
        SagaSettings {
            delete_course_on_event_delete: true,
            student_role_id: 7,
            ..settings()
        },
    ];
    write_history(store, || async {}).await;
    // No row yet (projector not started): the whole log is folded.
    for id in ids {
        assert_eq!(
            current_view(store, id, &settings()).await,
            folded_view_with(store, id, &settings()).await,
            "{id}"
        );
    }
    views::catch_up(store, &settings()).await.expect("catch up");
    let snapshot = views::read::snapshot(store).await.expect("snapshot");
    assert_eq!(snapshot.folds.len(), 3);
    assert!(snapshot.folds.iter().all(|(_, f)| f.is_some()));
    // Caught up: the stored fold rendered with any settings is the fold of the log.
    for id in ids {
        for s in &all_settings {
            assert_eq!(
                current_view(store, id, s).await,
                folded_view_with(store, id, s).await,
                "{id} {s:?}"
            );
        }
    }
    // Events after the checkpoint (the tail) are applied.
    event(
        store,
        "ev-a",
        EventCommand::AddParticipant {
            participant: person("late", "student"),
        },
    )
    .await;
    record(store, "ev-a", vec![enrolled("late", 44, 5)]).await;
    let now = current_view(store, "ev-a", &settings())
        .await
        .expect("ev-a view");
    assert_eq!(
        Some(&now),
        folded_view_with(store, "ev-a", &settings()).await.as_ref()
    );
    assert!(now.participants.iter().any(|p| p.id == "late"));
    assert_ne!(
        views::read::event_view(store, "ev-a")
            .await
            .expect("stored"),
        Some(now.clone()),
        "the stored view lags: the tail was needed"
    );

    // The answer starts from the stored fold: a mark put into it shows, with the tail on top.
    exec(
        store,
        "UPDATE event_views SET fold = replace(fold, '\"name\":\"Event ev-a\"', \
         '\"name\":\"from the read model\"') WHERE event_id = 'ev-a'",
    )
    .await;
    let marked = current_view(store, "ev-a", &settings())
        .await
        .expect("ev-a view");
    assert_eq!(marked.name, "from the read model");
    assert!(marked.participants.iter().any(|p| p.id == "late"));
    // A fold this binary cannot read, or none (a row from before folds were stored): the log.
    for tamper in [
        "UPDATE event_views SET fold = '{\"not\": \"a fold\"}' WHERE event_id = 'ev-a'",
        "UPDATE event_views SET fold = NULL WHERE event_id = 'ev-a'",
    ] {
        exec(store, tamper).await;
        assert_eq!(
            current_view(store, "ev-a", &settings()).await,
            Some(now.clone()),
            "{tamper}"
        );
    }
    store.close().await;
}

both_backends!(
    two_projectors_stay_exactly_once,
    live_views_equal_replayed_views,
    changed_settings_rebuild_the_views,
    replay_while_serving,
    story_interleaves_both_streams,
    current_fold_is_the_stored_fold_plus_the_tail,
);
