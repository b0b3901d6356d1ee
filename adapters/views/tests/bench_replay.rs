//! The replay benchmark, run by hand (ignored by default):
//! `OPENVLE_BENCH_EVENTS=100000 cargo test --release -p openvle-views --test bench_replay -- --ignored --nocapture`
//! (PostgreSQL too when OPENVLE_TEST_PG is set).

use store::Store;

fn n_events() -> u64 {
    std::env::var("OPENVLE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

async fn run(label: &str, store: &Store) {
    let figures = views::bench_replay(store, n_events()).await.expect("bench");
    println!(
        "{label}: {}",
        serde_json::to_string_pretty(&figures).expect("json")
    );
    assert!(figures.events >= n_events());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_sqlite() {
    let url = store::testing::fresh_sqlite_url();
    let store = Store::connect(&url).await.expect("store");
    run("sqlite", &store).await;
    store.close().await;
    if let Some(path) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_postgres() {
    let Some(db) = store::testing::PgTestDb::new().await else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("store");
    run("postgres", &store).await;
    store.close().await;
}
