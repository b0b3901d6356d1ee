//! What goes back on the wire: JSON or Moodle's XML, and the broken answers of the faults (an
//! HTML maintenance page, a connection dropped in the middle of the body).

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::errors::WsError;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn to_xml(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<VALUE null=\"null\"/>"),
        Value::Array(items) => {
            out.push_str("<MULTIPLE>\n");
            for i in items {
                to_xml(i, out);
            }
            out.push_str("</MULTIPLE>\n");
        }
        Value::Object(map) => {
            out.push_str("<SINGLE>\n");
            for (k, v) in map {
                out.push_str(&format!("<KEY name=\"{}\">", xml_escape(k)));
                to_xml(v, out);
                out.push_str("</KEY>\n");
            }
            out.push_str("</SINGLE>\n");
        }
        Value::String(s) => out.push_str(&format!("<VALUE>{}</VALUE>", xml_escape(s))),
        Value::Bool(b) => out.push_str(&format!("<VALUE>{}</VALUE>", u8::from(*b))),
        Value::Number(n) => out.push_str(&format!("<VALUE>{n}</VALUE>")),
    }
}

pub(super) fn answer(json: bool, result: &Result<Value, WsError>) -> Response {
    let (ctype, body) = match (json, result) {
        (true, Ok(v)) => ("application/json", v.to_string()),
        (true, Err(e)) => ("application/json", serde_json::to_string(e).unwrap_or_default()),
        (false, Ok(v)) => {
            let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<RESPONSE>\n");
            if !v.is_null() {
                to_xml(v, &mut s);
            }
            s.push_str("</RESPONSE>\n");
            ("application/xml", s)
        }
        (false, Err(e)) => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"{}\">\n<ERRORCODE>{}</ERRORCODE>\n<MESSAGE>{}</MESSAGE>\n</EXCEPTION>\n",
                xml_escape(&e.exception),
                xml_escape(&e.errorcode),
                xml_escape(&e.message)
            ),
        ),
    };
    ([(header::CONTENT_TYPE, ctype)], body).into_response()
}

pub(super) fn html_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html")],
        "<!DOCTYPE html><html><head><title>Site maintenance</title></head><body>This site is undergoing maintenance and is currently not available</body></html>",
    )
        .into_response()
}

pub(super) fn dropped() -> Response {
    let stream = futures::stream::iter(vec![
        Ok::<Bytes, std::io::Error>(Bytes::from_static(b"[{\"id\":")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated connection drop",
        )),
    ]);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
