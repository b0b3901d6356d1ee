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
            idnumber: None,
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

/// A listener that only counts the connections it gets.
async fn counting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = sock
                .write_all(&http("200 OK", "application/json", b"null"))
                .await;
        }
    });
    (format!("http://{addr}"), hits)
}

/// A redirect is never followed (a 307/308 would re-POST `wstoken` to the target): it is a
/// permanent HTTP error telling people to fix MOODLE_URL.
#[tokio::test]
async fn redirects_are_not_followed() {
    let (elsewhere, hits) = counting_server().await;
    for status in [
        "301 Moved Permanently",
        "302 Found",
        "303 See Other",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let url = serve_raw(
            format!(
                "HTTP/1.1 {status}\r\nlocation: {elsewhere}/webservice/rest/server.php\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .into_bytes(),
        )
        .await;
        let c = client(&url);
        let e = c
            .enrol_users(&[Enrolment {
                role_id: 5,
                user_id: 2,
                course_id: 3,
                suspend: false,
            }])
            .await
            .unwrap_err();
        let code: u16 = status[..3].parse().unwrap();
        assert!(
            matches!(e, MoodleError::Http { status, .. } if status == code),
            "{e:?}"
        );
        assert_eq!(e.code(), format!("http_{code}"));
        assert!(!e.is_transient(), "{e:?}");
        assert!(e.advice().contains("MOODLE_URL redirects"), "{e}");
        assert_eq!(c.calls_made(), 1);
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// What a server echoes back (token included, plain or form-encoded) never reaches an error.
#[tokio::test]
async fn echoed_token_is_redacted() {
    const T: &str = "hostile-secret-token";
    let bodies = [
        format!(
            r#"{{"exception":"moodle_exception","errorcode":"invalidtoken","message":"Invalid token {T}"}}"#
        ),
        format!(r#"{{"exception":"moodle_exception","errorcode":"{T}","message":"m"}}"#),
        r#"{"exception":"x","errorcode":"x","message":"body: wstoken=hostile%2Dsecret%2dtoken&wsfunction=f"}"#
            .to_string(),
        format!(r#"{{"sitename":"S","username":"u","userid":"{T}"}}"#),
        format!(r#"{{"sitename":"S","username":"u","userid":2,"functions":"{T}"}}"#),
    ];
    for body in &bodies {
        let e = site_info_error(http("200 OK", "application/json", body.as_bytes())).await;
        let printed = format!("{e}\n{e:?}\n{}\n{}", e.advice(), e.code());
        assert!(!printed.contains(T), "{printed}");
        assert!(!printed.contains("secret%2"), "{printed}");
        assert!(printed.contains("[redacted]"), "{body} -> {printed}");
    }
    // The echoed token as errorcode is neither printed nor used as a metric label.
    let e = site_info_error(http("200 OK", "application/json", bodies[1].as_bytes())).await;
    assert_eq!(e.code(), "other");
    assert_eq!(e.errorcode(), Some("[redacted]"));
}
