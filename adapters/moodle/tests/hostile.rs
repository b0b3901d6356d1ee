//! Hostile or broken servers: every answer becomes a typed error, never a panic.

use moodle::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves `response` (raw HTTP) to every connection, after reading the request head and body.
async fn serve_raw(response: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let response = response.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read until the body announced by Content-Length has arrived.
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if seen.len() >= head_end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

fn http(status: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

fn client(url: &str) -> MoodleClient {
    let opts = ClientOptions {
        allow_insecure_http: true,
        ..Default::default()
    };
    MoodleClient::from_parts(url, Secret::new("hostile-secret-token"), opts).unwrap()
}

async fn site_info_error(response: Vec<u8>) -> MoodleError {
    let url = serve_raw(response).await;
    let e = client(&url).site_info().await.unwrap_err();
    assert!(!format!("{e:?}{e}").contains("hostile-secret-token"));
    e
}

#[tokio::test]
async fn html_page_is_transient_bad_response() {
    let e = site_info_error(http(
        "200 OK",
        "text/html",
        b"<html><body>Fatal error</body></html>",
    ))
    .await;
    assert_eq!(e.code(), "bad_response");
    assert!(e.is_transient());
}

#[tokio::test]
async fn truncated_json_and_wrong_types() {
    let e = site_info_error(http(
        "200 OK",
        "application/json",
        br#"{"sitename":"x","user"#,
    ))
    .await;
    assert_eq!(e.code(), "bad_response");
    let e = site_info_error(http(
        "200 OK",
        "application/json",
        br#"{"sitename":5,"username":[],"userid":"x"}"#,
    ))
    .await;
    assert_eq!(e.code(), "bad_response");
    assert!(!e.is_transient());
    let e = site_info_error(http("200 OK", "application/json", b"\xff\xfe\x00garbage")).await;
    assert_eq!(e.code(), "bad_response");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let big = vec![b' '; 40 * 1024 * 1024];
    let e = site_info_error(http("200 OK", "application/json", &big)).await;
    assert_eq!(e.code(), "bad_response");
    assert!(e.to_string().contains("larger than"));
    // Without a Content-Length the cap applies while reading.
    let mut raw =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n".to_vec();
    raw.extend(vec![b' '; 40 * 1024 * 1024]);
    let e = site_info_error(raw).await;
    assert_eq!(e.code(), "bad_response");
}

#[tokio::test]
async fn status_codes() {
    let e = site_info_error(http("403 Forbidden", "text/html", b"")).await;
    assert_eq!(e.code(), "http_403");
    assert!(!e.is_transient());
    assert!(e.to_string().contains("REST"));
    let e = site_info_error(http("502 Bad Gateway", "text/html", b"bad gateway")).await;
    assert!(e.is_transient() && e.outcome_unknown());
    let e = site_info_error(http("404 Not Found", "text/html", b"")).await;
    assert_eq!(e.code(), "http_404");
}

#[tokio::test]
async fn closed_after_send_is_outcome_unknown() {
    let e = site_info_error(Vec::new()).await;
    assert_eq!(e.code(), "transport");
    assert!(e.outcome_unknown());
}

#[tokio::test]
async fn fewer_rows_than_sent_is_count_mismatch() {
    let url = serve_raw(http(
        "200 OK",
        "application/json",
        br#"[{"id":4,"username":"a"}]"#,
    ))
    .await;
    let users: Vec<NewUser> = ["a", "b"]
        .iter()
        .map(|u| NewUser {
            username: u.to_string(),
            firstname: "F".into(),
            lastname: "L".into(),
            email: format!("{u}@example.org"),
            auth: "oauth2".into(),
            password: None,
            createpassword: false,
        })
        .collect();
    let e = client(&url).create_users(&users).await.unwrap_err();
    assert!(
        matches!(
            e,
            MoodleError::CountMismatch {
                sent: 2,
                returned: 1,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.outcome_unknown());
}
