//! A proxy in front of the real Moodle that loses answers after Moodle applied the call: what a
//! load balancer's 502 or a dropped connection does to the engine in production.
//!
//! Every request is forwarded in a task of its own, so Moodle always finishes it (as PHP does
//! when the client goes away) and the proxy always learns its answer; then, with the seeded
//! probability, the engine gets a 502 instead of that answer. The proxy records each call: the
//! web-service function, and whether Moodle's answer was an error, lost, or never read because the
//! engine was gone (SIGKILLed).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What became of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Moodle's answer reached the engine.
    Answered,
    /// Moodle answered; the engine got a 502 instead.
    Lost,
    /// Moodle answered after the engine had hung up (killed mid-call).
    Abandoned,
}

/// One forwarded call.
#[derive(Debug, Clone)]
pub struct ProxiedCall {
    pub function: String,
    /// Moodle answered with an exception body (or could not be reached).
    pub error: bool,
    pub fate: Fate,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    lose_rate: f64,
    rng: Mutex<StdRng>,
    calls: Mutex<Vec<ProxiedCall>>,
}

/// The running proxy; stops when dropped.
pub struct LossyProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// A proxy to `upstream` (a wwwroot) losing `lose_rate` of the answers, seeded.
    pub async fn start(upstream: &str, lose_rate: f64, seed: u64) -> LossyProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
            lose_rate,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            calls: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LossyProxy { addr, shared, task }
    }

    /// The proxy's wwwroot, for `MOODLE_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<ProxiedCall> {
        self.shared.calls.lock().expect("calls").clone()
    }

    /// Calls of `function` that Moodle carried out (answered without an error), whatever became
    /// of the answer.
    pub fn applied(&self, function: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.function == function && !c.error)
            .count()
    }

    /// How many answers the engine never got (lost or abandoned).
    pub fn unanswered(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.fate != Fate::Answered)
            .count()
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let function = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "wsfunction")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<Response>();
    let s = shared.clone();
    // The call runs to its end even when the engine hangs up (its handler future is dropped).
    tokio::spawn(async move {
        let mut req = s.client.post(format!("{}{path}", s.upstream)).body(body);
        if let Some(ct) = headers.get(axum::http::header::CONTENT_TYPE) {
            req = req.header(axum::http::header::CONTENT_TYPE, ct.clone());
        }
        let answer = match req.send().await {
            Ok(r) => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                r.bytes().await.ok().map(|b| (status, b))
            }
            Err(_) => None,
        };
        let error = answer.as_ref().is_none_or(|(status, b)| {
            !status.is_success()
                || b.starts_with(b"{\"exception\"")
                || b.windows(12).any(|w| w == b"\"errorcode\":")
        });
        let lose = s.rng.lock().expect("rng").gen_bool(s.lose_rate);
        let response = match (&answer, lose) {
            (Some(_), true) => (StatusCode::BAD_GATEWAY, "lost by the test proxy").into_response(),
            (Some((status, b)), false) => (
                *status,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                b.clone(),
            )
                .into_response(),
            (None, _) => (StatusCode::BAD_GATEWAY, "Moodle unreachable").into_response(),
        };
        let fate = match tx.send(response) {
            Err(_) => Fate::Abandoned,
            Ok(()) if lose && answer.is_some() => Fate::Lost,
            Ok(()) => Fate::Answered,
        };
        s.calls.lock().expect("calls").push(ProxiedCall {
            function,
            error,
            fate,
        });
    });
    rx.await
        .unwrap_or_else(|_| (StatusCode::BAD_GATEWAY, "proxy task failed").into_response())
}
