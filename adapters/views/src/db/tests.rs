//! The shadow table is made from the live table's own definition (no second copy of the schema
//! to drift): checked on both backends, before and after a swap.

use super::*;

#[test]
fn shadow_ddl_keeps_columns_and_options_whatever_the_header() {
    let body = "(\n    event_id text PRIMARY KEY,\n    fold text\n) STRICT, WITHOUT ROWID";
    for header in [
        "CREATE TABLE IF NOT EXISTS event_views\n",
        "CREATE TABLE \"event_views\" ",
        "CREATE TABLE event_views",
    ] {
        let ddl = shadow_ddl(&format!("{header}{body}"), SHADOW).expect("ddl");
        assert_eq!(ddl, format!("CREATE TABLE {SHADOW} {body}"), "{header:?}");
    }
    assert_eq!(shadow_ddl("CREATE TABLE x", SHADOW), None);
}

/// (name, type, not null) of every column of `table`, in order.
async fn columns(store: &Store, table: &str) -> Vec<(String, String, bool)> {
    match store.pool() {
        DbPool::Sqlite(p) => {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT name, type, \"notnull\" FROM pragma_table_info($1) ORDER BY cid",
            )
            .bind(table)
            .fetch_all(p)
            .await
            .expect("columns");
            rows.into_iter().map(|(n, t, nn)| (n, t, nn != 0)).collect()
        }
        DbPool::Postgres(p) => {
            let rows: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            )
            .bind(table)
            .fetch_all(p)
            .await
            .expect("columns");
            rows.into_iter()
                .map(|(n, t, nullable)| (n, t, nullable == "NO"))
                .collect()
        }
    }
}

async fn shadow_is_shaped_like_live(store: &Store) {
    check_schema(store).await.expect("migrated schema");
    let live = columns(store, LIVE).await;
    let names: Vec<&str> = live.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, ["event_id", "view", "last_position", "fold"]);
    for _ in 0..2 {
        recreate_shadow(store).await.expect("shadow");
        assert_eq!(columns(store, SHADOW).await, live);
        // After a swap the live table is the former shadow (SQLite then quotes its name).
        swap_in_shadow(store, 0, &SagaSettings::disabled())
            .await
            .expect("swap");
        assert_eq!(columns(store, LIVE).await, live);
        assert!(columns(store, SHADOW).await.is_empty());
    }
    // The old tables are gone (the migration dropped them).
    assert!(columns(store, "moodle_courses").await.is_empty());
    assert!(columns(store, "audit_index").await.is_empty());
}

#[tokio::test]
async fn shadow_is_shaped_like_live_sqlite() {
    let url = store::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.expect("store");
    shadow_is_shaped_like_live(&store).await;
    store.close().await;
    store::testing::remove_sqlite_files(&url);
}

#[tokio::test]
async fn shadow_is_shaped_like_live_postgres() {
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("store");
    shadow_is_shaped_like_live(&store).await;
    store.close().await;
}

#[tokio::test]
async fn a_missing_table_is_a_schema_error_not_a_creation() {
    let url = store::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.expect("store");
    with_pool!(store.pool(), |p| sqlx::query(
        "ALTER TABLE event_views DROP COLUMN fold"
    )
    .execute(p)
    .await
    .map(|_| ())
    .expect("drop column"));
    let err = check_schema(&store).await.expect_err("old table");
    assert!(matches!(err, ViewsError::Schema(_)), "{err}");
    assert!(err.to_string().contains("openvle-moodle migrate"), "{err}");
    assert!(columns(&store, LIVE).await.iter().all(|c| c.0 != "fold"));
    store.close().await;
    store::testing::remove_sqlite_files(&url);
}
