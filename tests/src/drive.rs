//! Driving the real `openvle-moodle serve` as OpenVLE core does: its command line, and commands
//! over HTTP that survive the process being killed (a cut request is looked up before it is sent
//! again, never blindly repeated), then polling until the saga has converged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::binary::Proc;
use crate::lifecycle::{Cmd, Model, Person};

/// How long a test waits for a command to take effect or the saga to converge.
pub const DEADLINE: Duration = Duration::from_secs(240);

/// `serve` on `port` over `db_url` with the given `MOODLE_*` settings; retries spaced for a
/// test (answers may be lost on purpose) and never parked for it.
pub fn serve_proc(db_url: &str, moodle: &[String], port: u16, dir: &std::path::Path) -> Proc {
    let mut args: Vec<String> = [
        "--database-url",
        db_url,
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--worker-id",
        "w1",
        "--concurrency",
        "4",
        "--retry-base-ms",
        "100",
        "--retry-max-ms",
        "2000",
        "--max-attempts",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for m in moodle {
        args.push("--moodle".into());
        args.push(m.clone());
    }
    Proc::new(args, dir.join("engine.log"))
}

/// OpenVLE core's side of the API.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(port: u16) -> Http {
        Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Status and JSON body, or None when the engine cannot be reached (killed, restarting).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.ok()?;
        let status = resp.status();
        let bytes = resp.bytes().await.ok()?;
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub async fn get(&self, path: &str) -> Option<(StatusCode, Value)> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Whether `cmd` already took effect (None: the engine is not answering).
    pub async fn applied(&self, cmd: &Cmd) -> Option<bool> {
        if let Cmd::Environment { id, template } = cmd {
            let (status, body) = self.get(&format!("/api/v1/environments/{id}")).await?;
            return match status {
                StatusCode::OK => Some(
                    body["moodle_template_course_id"].as_i64() == *template
                        || body["environment"]["moodle_template_course_id"].as_i64() == *template,
                ),
                StatusCode::NOT_FOUND => Some(false),
                _ => None,
            };
        }
        let event = cmd.event().unwrap();
        let (status, view) = self.get(&format!("/api/v1/events/{event}")).await?;
        if status == StatusCode::NOT_FOUND {
            return Some(false);
        }
        if status != StatusCode::OK {
            return None;
        }
        let has = |pid: &str| {
            view["participants"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["id"] == pid))
        };
        let status = view["status"].as_str().unwrap_or("");
        Some(match cmd {
            Cmd::Environment { .. } => unreachable!(),
            Cmd::Deploy { .. } => true,
            Cmd::Add { person, .. } => has(&person.id),
            Cmd::Remove { participant, .. } => !has(participant),
            Cmd::End { .. } => status == "ended" || status == "deleted",
            Cmd::Delete { .. } => status == "deleted",
        })
    }

    pub async fn send(&self, cmd: &Cmd) -> Option<(StatusCode, Value)> {
        use reqwest::Method;
        match cmd {
            Cmd::Environment { id, template } => {
                let body = serde_json::json!({
                    "name": format!("Environment {id}"),
                    "moodle_template_course_id": template,
                });
                self.call(
                    Method::PUT,
                    &format!("/api/v1/environments/{id}"),
                    Some(&body),
                )
                .await
            }
            Cmd::Deploy { event, env, people } => {
                let body = serde_json::json!({
                    "id": event,
                    "environment_id": env,
                    "name": format!("Lab {event}"),
                    "participants": people.iter().map(Person::json).collect::<Vec<_>>(),
                });
                self.call(Method::POST, "/api/v1/events", Some(&body)).await
            }
            Cmd::Add { event, person } => {
                self.call(
                    Method::POST,
                    &format!("/api/v1/events/{event}/participants"),
                    Some(&person.json()),
                )
                .await
            }
            Cmd::Remove { event, participant } => {
                self.call(
                    Method::DELETE,
                    &format!("/api/v1/events/{event}/participants/{participant}"),
                    None,
                )
                .await
            }
            Cmd::End { event } => {
                self.call(Method::POST, &format!("/api/v1/events/{event}/end"), None)
                    .await
            }
            Cmd::Delete { event } => {
                self.call(Method::DELETE, &format!("/api/v1/events/{event}"), None)
                    .await
            }
        }
    }

    /// Sends `cmd` until it took effect once: a request cut by a kill is looked up (through the
    /// view) before it is sent again, never blindly repeated.
    pub async fn ensure(&self, cmd: &Cmd, proc: &Mutex<Proc>) {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "{cmd:?} never took effect; engine log:\n{}",
                proc.lock().unwrap().log_tail(40)
            );
            match self.applied(cmd).await {
                Some(true) => return,
                Some(false) => match self.send(cmd).await {
                    Some((StatusCode::ACCEPTED, _)) => return,
                    Some((status, body)) if status.is_client_error() => {
                        panic!("{cmd:?} refused: {status} {body}")
                    }
                    _ => {}
                },
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Polls until every event's Moodle state is final (`in_sync`, or `not_linked`); returns
    /// the views and how many operator retries were sent.
    ///
    /// The binary's retry delays are the production ones (1 s doubling to 300 s, not settable
    /// from its command line), and with 30 % of *every* answer lost (look-ups included) an
    /// event can meet several failures in a row and wait minutes for its next attempt. So an
    /// event still pending after 5 s gets what an operator would send, `POST
    /// /api/v1/events/{id}/moodle/retry` ("try now": it queues the event at once and records
    /// nothing when the event is not parked), at most every 3 s. That shortens waits only: the
    /// saga still decides everything from the log and Moodle.
    pub async fn converge(
        &self,
        model: &Model,
        proc: &Mutex<Proc>,
    ) -> (BTreeMap<String, Value>, u32) {
        let started = Instant::now();
        let mut last_poke = Instant::now();
        let mut pokes = 0u32;
        loop {
            let mut views = BTreeMap::new();
            let mut waiting = Vec::new();
            let mut pending = Vec::new();
            for (id, e) in &model.events {
                let want = if e.linked { "in_sync" } else { "not_linked" };
                match self.get(&format!("/api/v1/events/{id}")).await {
                    Some((StatusCode::OK, v)) => {
                        if v["moodle"]["state"] != want {
                            waiting.push(format!("{id}: {}", v["moodle"]));
                            pending.push(id.clone());
                        }
                        views.insert(id.clone(), v);
                    }
                    other => waiting.push(format!("{id}: {other:?}")),
                }
            }
            if waiting.is_empty() {
                return (views, pokes);
            }
            assert!(
                started.elapsed() < DEADLINE,
                "no convergence after {DEADLINE:?} ({pokes} operator retries):\n{}\nengine log:\n{}",
                waiting.join("\n"),
                proc.lock().unwrap().log_tail(60)
            );
            if started.elapsed() > Duration::from_secs(5)
                && last_poke.elapsed() > Duration::from_secs(3)
            {
                last_poke = Instant::now();
                for id in &pending {
                    let path = format!("/api/v1/events/{id}/moodle/retry");
                    if let Some((StatusCode::ACCEPTED, _)) =
                        self.call(reqwest::Method::POST, &path, None).await
                    {
                        pokes += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The engine's views name the courses Moodle holds: each event's recorded course id is the id
/// of the course `ovle-<event id>` in `snapshot` (when there is one).
pub fn assert_views_name_moodle_courses(
    views: &BTreeMap<String, Value>,
    snapshot: &moodle_sim::SimState,
) {
    for (id, v) in views {
        let course = snapshot
            .courses
            .values()
            .find(|c| crate::is_course_of(&c.shortname, &c.idnumber, id));
        if let Some(c) = course {
            assert_eq!(v["moodle"]["course_id"].as_i64(), Some(c.id), "{id}: {v}");
        }
    }
}
