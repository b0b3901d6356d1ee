//! The baselines of the API benchmark: the same rows inserted bare into a plain table, and the
//! cost of the gap-safe ordering trigger on PostgreSQL.

use super::*;

pub(super) async fn create_plain_table(store: &Store, kind: Kind) -> anyhow::Result<()> {
    let sql = match kind {
        Kind::Sqlite => {
            "CREATE TABLE bench_plain (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
             sequence integer NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
             payload text NOT NULL, metadata text NOT NULL, \
             PRIMARY KEY (aggregate_type, aggregate_id, sequence)) STRICT"
        }
        Kind::Postgres => {
            "CREATE TABLE bench_plain (aggregate_type text NOT NULL, aggregate_id text NOT NULL, \
             sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL, \
             payload json NOT NULL, metadata json NOT NULL, \
             PRIMARY KEY (aggregate_type, aggregate_id, sequence))"
        }
    };
    exec(store, sql).await
}

/// The rows appended after `after`, grouped by the command that appended them, in log order.
pub(super) async fn read_groups(store: &Store, after: i64) -> anyhow::Result<Vec<Group>> {
    let mut pager = store.pager(after, 1000);
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    loop {
        let page = pager.next_page().await?;
        if page.is_empty() {
            break;
        }
        for e in page {
            let command = e
                .metadata
                .get("command_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let row = Row {
                aggregate_type: e.aggregate_type,
                aggregate_id: e.aggregate_id,
                sequence: e.sequence,
                event_type: e.event_type,
                event_version: e.event_version,
                payload: e.payload.to_string(),
                metadata: e.metadata.to_string(),
            };
            match index.get(&command) {
                Some(&i) => groups[i].push(row),
                None => {
                    index.insert(command, groups.len());
                    groups.push(vec![row]);
                }
            }
        }
    }
    Ok(groups)
}

/// INSERTs the groups into `bench_plain` with `clients` concurrent tasks (round-robin), one
/// transaction per group. Returns per-transaction latencies and the wall time.
pub(super) async fn bare_inserts(
    store: &Store,
    groups: Vec<Group>,
    clients: usize,
) -> anyhow::Result<(Samples, f64)> {
    let mut shares: Vec<Vec<Group>> = vec![Vec::new(); clients.max(1)];
    for (i, g) in groups.into_iter().enumerate() {
        shares[i % clients.max(1)].push(g);
    }
    let started = Instant::now();
    let mut set = JoinSet::new();
    for share in shares {
        let pool = store.pool().clone();
        set.spawn(async move {
            let mut samples = Samples::default();
            for group in share {
                let t = Instant::now();
                insert_group(&pool, "bench_plain", &group).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut all = Samples::default();
    while let Some(joined) = set.join_next().await {
        all.extend(joined??);
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

async fn insert_group(pool: &DbPool, table: &str, group: &[Row]) -> anyhow::Result<()> {
    match pool {
        DbPool::Sqlite(p) => {
            let sql = format!(
                "INSERT INTO {table} (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
            );
            let mut tx = p.begin().await?;
            for r in group {
                sqlx::query(&sql)
                    .bind(&r.aggregate_type)
                    .bind(&r.aggregate_id)
                    .bind(r.sequence)
                    .bind(&r.event_type)
                    .bind(&r.event_version)
                    .bind(&r.payload)
                    .bind(&r.metadata)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        DbPool::Postgres(p) => {
            let sql = format!(
                "INSERT INTO {table} (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6::json, $7::json)"
            );
            let mut tx = p.begin().await?;
            for r in group {
                sqlx::query(&sql)
                    .bind(&r.aggregate_type)
                    .bind(&r.aggregate_id)
                    .bind(r.sequence)
                    .bind(&r.event_type)
                    .bind(&r.event_version)
                    .bind(&r.payload)
                    .bind(&r.metadata)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(())
}

/// A Deployed row with 5 participants, for a fresh aggregate.
fn deployed_row(n: usize) -> Row {
    let id = uuid::Uuid::new_v4().to_string();
    let tag = format!("o{n}");
    let participants: Vec<Value> = (0..5).map(|k| participant(&tag, k)).collect();
    let command = uuid::Uuid::new_v4().to_string();
    Row {
        aggregate_type: "event".into(),
        aggregate_id: id.clone(),
        sequence: 1,
        event_type: "Deployed".into(),
        event_version: "1".into(),
        payload: json!({"Deployed": {
            "id": id,
            "environment_id": "bench-env",
            "name": format!("Bench event {tag}"),
            "template_course_id": null,
            "participants": participants,
        }})
        .to_string(),
        metadata: json!({"command_id": command, "actor": "bench", "correlation_id": command})
            .to_string(),
    }
}

async fn append_round(
    store: &Store,
    appends: usize,
    writers: usize,
) -> anyhow::Result<(Samples, f64)> {
    let per = appends.div_ceil(writers);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..writers {
        let pool = store.pool().clone();
        set.spawn(async move {
            let mut samples = Samples::default();
            for j in 0..per {
                let row = deployed_row(w * per + j);
                let t = Instant::now();
                insert_group(&pool, "events", std::slice::from_ref(&row)).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut all = Samples::default();
    while let Some(joined) = set.join_next().await {
        all.extend(joined??);
    }
    Ok((all, started.elapsed().as_secs_f64()))
}

pub(super) async fn ordering(opts: &Opts, appends: usize) -> anyhow::Result<Table> {
    let db = BenchDb::postgres(&opts.pg).await?;
    let result = async {
        let store = Store::connect(&db.url).await?;
        let mut table = Table::new(&[
            "writers",
            "appends/s, trigger on",
            "p50 / p99 ms, on",
            "appends/s, trigger off",
            "p50 / p99 ms, off",
            "cost",
        ]);
        for writers in [1usize, 8] {
            eprintln!("   ordering, {writers} writer(s)");
            let mut on = (Samples::default(), 0.0f64);
            let mut off = (Samples::default(), 0.0f64);
            for round in 0..4 {
                let enabled = round % 2 == 0;
                let verb = if enabled { "ENABLE" } else { "DISABLE" };
                exec(
                    &store,
                    &format!("ALTER TABLE events {verb} TRIGGER {ORDERING_TRIGGER}"),
                )
                .await?;
                let (samples, secs) = append_round(&store, appends, writers).await?;
                let slot = if enabled { &mut on } else { &mut off };
                slot.0.extend(samples);
                slot.1 += secs;
            }
            exec(
                &store,
                &format!("ALTER TABLE events ENABLE TRIGGER {ORDERING_TRIGGER}"),
            )
            .await?;
            let on_rate = per_sec(on.0.len() as u64, on.1);
            let off_rate = per_sec(off.0.len() as u64, off.1);
            table.row(vec![
                writers.to_string(),
                rate(on_rate),
                format!(
                    "{:.2} / {:.2}",
                    on.0.percentile_ms(50.0),
                    on.0.percentile_ms(99.0)
                ),
                rate(off_rate),
                format!(
                    "{:.2} / {:.2}",
                    off.0.percentile_ms(50.0),
                    off.0.percentile_ms(99.0)
                ),
                format!("{:.0} %", (1.0 - ratio(on_rate, off_rate)) * 100.0),
            ]);
        }
        store.close().await;
        Ok::<_, anyhow::Error>(table)
    }
    .await;
    db.remove().await;
    result
}
