#![allow(dead_code)]

use domain::environment::{Environment, EnvironmentCommand};
use domain::event::{EventCommand, VleEvent};
use domain::moodle_sync::{MoodleSync, MoodleSyncCommand, MoodleSyncEvent};
use domain::participant::ParticipantInput;
use store::{Appended, CommandMeta, Store};

/// A store on a fresh SQLite file.
pub async fn sqlite_store() -> Store {
    sqlite_store_at(&store::testing::fresh_sqlite_url()).await
}

pub async fn sqlite_store_at(url: &str) -> Store {
    Store::connect(url).await.expect("connect sqlite")
}

/// A store on a fresh PostgreSQL database (None when OPENVLE_TEST_PG is unset), with the guard
/// that drops the database.
pub async fn pg_store() -> Option<(Store, store::testing::PgTestDb)> {
    let db = store::testing::PgTestDb::new().await?;
    let s = Store::connect(&db.url).await.expect("connect postgres");
    Some((s, db))
}

pub fn meta() -> CommandMeta {
    CommandMeta::new("tester")
}

pub fn participant(n: usize) -> ParticipantInput {
    ParticipantInput {
        idnumber: None,
        id: format!("p{n}"),
        email: format!("p{n}@example.org"),
        username: None,
        first_name: "First".into(),
        last_name: format!("Last{n}"),
        role: "student".into(),
    }
}

pub async fn put_env(s: &Store, id: &str, name: &str) -> Appended {
    s.execute::<Environment>(
        id,
        EnvironmentCommand::Put {
            course: Default::default(),
            id: id.into(),
            name: name.into(),
            moodle_template_course_id: Some(42),
        },
        &meta(),
    )
    .await
    .expect("put environment")
}

pub async fn deploy(s: &Store, env: &str, id: &str, participants: usize) -> Appended {
    let environment = s
        .load::<Environment>(env)
        .await
        .expect("load env")
        .map(|(e, _)| e);
    s.execute::<VleEvent>(
        id,
        EventCommand::Deploy {
            context: Default::default(),
            schedule: Default::default(),
            id: id.into(),
            environment_id: env.into(),
            name: format!("event {id}"),
            participants: (0..participants).map(participant).collect(),
            environment,
        },
        &meta(),
    )
    .await
    .expect("deploy")
}

pub async fn add(s: &Store, id: &str, n: usize) -> Appended {
    s.execute::<VleEvent>(
        id,
        EventCommand::AddParticipant {
            participant: participant(n),
        },
        &meta(),
    )
    .await
    .expect("add participant")
}

pub async fn record_course(s: &Store, id: &str, course_id: i64) -> Appended {
    s.execute::<MoodleSync>(
        id,
        MoodleSyncCommand::Record(vec![MoodleSyncEvent::CourseDuplicated {
            course_id,
            shortname: format!("ovle-{id}"),
            template_course_id: 42,
            category_id: 1,
            adopted: false,
            caused_by: uuid::Uuid::new_v4(),
        }]),
        &meta(),
    )
    .await
    .expect("record course")
}

/// Runs a statement directly (tampering, fixtures).
pub async fn raw(s: &Store, sql: &str) {
    match s.pool() {
        store::DbPool::Sqlite(p) => {
            sqlx::raw_sql(sql).execute(p).await.expect(sql);
        }
        store::DbPool::Postgres(p) => {
            sqlx::raw_sql(sql).execute(p).await.expect(sql);
        }
    }
}
