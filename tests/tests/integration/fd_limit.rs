//! The attack of issue 13 as it was reproduced: 1,100 half-sent requests against the real
//! `openvle-moodle serve` under `ulimit -n 1024` (systemd's default) made health checks fail
//! (`accept error: Too many open files`). Now the connection cap (OPENVLE_HTTP_MAX_CONNECTIONS,
//! 512, under the limit) keeps the rest waiting in the kernel's queue, the header timeout frees
//! the slots, and a fresh health check is answered. Counts are bounded; the timeouts are only a
//! safety net, nothing asserts how fast anything happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::binary::{free_port, Proc};

const ATTACKERS: usize = 1_100;
const SAFETY: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_under_ulimit_1024_do_not_starve_health_checks() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = format!("sqlite://{}", dir.path().join("fd.db").display());
    let args = [
        "--database-url",
        &db,
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut proc = Proc::new(args, dir.path().join("engine.log"))
        .env("OPENVLE_HTTP_HEADER_TIMEOUT_SECS", "2")
        .nofile(1024);
    proc.start();
    // A fresh connection per check: the server closes idle keep-alive connections after the
    // header timeout, and a pooled one it closed would fail the next check for the client's sake.
    let http = reqwest::Client::builder()
        .timeout(SAFETY)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..300 {
        if http.get(&health).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve never answered: {}", proc.log_tail(30));

    // The attack: each connection sends half a request head and waits.
    let mut held = Vec::with_capacity(ATTACKERS);
    for _ in 0..ATTACKERS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(s);
    }
    let answer = http.get(&health).send().await;
    let status = answer.map(|r| r.status().as_u16());
    assert_eq!(
        status.as_ref().ok(),
        Some(&200),
        "health check during the attack: {status:?}\n{}",
        proc.log_tail(30)
    );
    // Every held connection is closed by the server, without an answer.
    let closed = futures::future::join_all(held.into_iter().map(|mut s| async move {
        let mut buf = Vec::new();
        tokio::time::timeout(SAFETY, s.read_to_end(&mut buf))
            .await
            .map(|r| r.map(|_| buf.is_empty()).unwrap_or(true))
            .unwrap_or(false)
    }))
    .await;
    assert!(
        closed.iter().all(|c| *c),
        "a held connection was answered or never closed"
    );
    assert!(proc.is_running(), "serve died: {}", proc.log_tail(30));
    let status = http.get(&health).send().await.map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(200));
    let log = std::fs::read_to_string(dir.path().join("engine.log")).unwrap_or_default();
    assert!(
        !log.contains("Too many open files"),
        "the engine ran out of file descriptors:\n{}",
        proc.log_tail(30)
    );
    proc.kill();
}
