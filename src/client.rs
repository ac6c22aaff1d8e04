//! The browser client's files, served at `/`.
//!
//! The files under `client/` are compiled into the binary (`rust-embed`, in every build
//! profile), so the server alone serves a working client wherever it is copied. For work on the
//! client, [`ClientFiles::Directory`] serves a folder from disk instead (`tower-http`'s
//! `ServeDir`), so an edit shows on the next reload without a rebuild.
//!
//! Every response says `Cache-Control: no-cache`: the files are small, and a browser must never
//! combine modules of two different versions after an upgrade. It revalidates instead, with
//! the `ETag` (embedded files) or `Last-Modified` (a folder), and gets a `304` when nothing
//! changed. Text files are declared UTF-8, and every file carries the headers of
//! [`security`]: a Content-Security-Policy, no framing, no referrer.

pub mod security;

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the client's files come from.
#[derive(Debug, Clone, Default)]
pub enum ClientFiles {
    /// The copies compiled into the binary.
    #[default]
    Embedded,
    /// A folder on disk, read on every request (for developing the client).
    Directory(PathBuf),
}

/// The files of `client/`, compiled in.
#[derive(rust_embed::Embed)]
#[folder = "client/"]
struct Embedded;

impl ClientFiles {
    /// The router answering `GET` for every client file, with the headers of a node of a
    /// cluster (`cluster`) or a single server: `/` is `index.html`, and anything that is not a
    /// client file is 404.
    pub fn router(&self, cluster: bool) -> Router {
        let files = match self {
            ClientFiles::Embedded => Router::new().fallback(get(embedded)),
            ClientFiles::Directory(root) => Router::new().fallback_service(ServeDir::new(root)),
        };
        let files = files
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_TYPE,
                utf8_text,
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            ));
        security::headers(cluster)
            .into_iter()
            .fold(files, |files, (name, value)| {
                files.layer(SetResponseHeaderLayer::overriding(name, value))
            })
    }
}

async fn embedded(uri: Uri, request: HeaderMap) -> axum::response::Response {
    let path = match uri.path().trim_start_matches('/') {
        "" => "index.html",
        path => path,
    };
    let Some(file) = Embedded::get(path) else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    let etag: String = file
        .metadata
        .sha256_hash()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let etag = format!("\"{etag}\"");
    if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes())
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
            (header::ETAG, etag),
        ],
        file.data,
    )
        .into_response()
}

/// The response's content type, with `charset=utf-8` added to text and scripts that lack one.
fn utf8_text<B>(response: &Response<B>) -> Option<HeaderValue> {
    let current = response.headers().get(header::CONTENT_TYPE)?;
    let text = current.to_str().ok()?;
    let is_text = text.starts_with("text/") || text == "application/javascript";
    if is_text && !text.contains("charset") {
        HeaderValue::from_str(&format!("{text}; charset=utf-8")).ok()
    } else {
        Some(current.clone())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(files: &ClientFiles, path: &str, etag: Option<&str>) -> Response<Body> {
        let mut request = Request::get(path);
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        files
            .router(false)
            .oneshot(request.body(Body::empty()).expect("a request"))
            .await
            .expect("a response")
    }

    fn folder() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("client")
    }

    #[tokio::test]
    async fn every_file_of_the_folder_is_served_both_ways_with_its_type() {
        for entry in std::fs::read_dir(folder()).expect("the client folder") {
            let name = entry.expect("an entry").file_name();
            let path = format!("/{}", name.to_str().expect("a UTF-8 name"));
            for files in [ClientFiles::Embedded, ClientFiles::Directory(folder())] {
                let response = get(&files, &path, None).await;
                assert_eq!(response.status(), StatusCode::OK, "{path} from {files:?}");
                let headers = response.headers();
                let content_type = headers[header::CONTENT_TYPE].to_str().expect("text");
                assert_ne!(content_type, "application/octet-stream", "{path}");
                if !path.ends_with(".svg") {
                    assert!(
                        content_type.ends_with("; charset=utf-8"),
                        "{path}: {content_type}"
                    );
                }
                assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
                for (name, value) in security::headers(false) {
                    assert_eq!(headers.get(&name), Some(&value), "{path}: {name}");
                }
            }
        }
    }

    #[tokio::test]
    async fn serves_the_page_at_the_root_and_nothing_outside_the_folder() {
        for files in [ClientFiles::Embedded, ClientFiles::Directory(folder())] {
            let response = get(&files, "/", None).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            let response = get(&files, "/app.js?v=1", None).await;
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/javascript; charset=utf-8"
            );
            for path in ["/nope.js", "/../Cargo.toml", "/%2e%2e/Cargo.toml"] {
                let response = get(&files, path, None).await;
                assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            }
        }
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        for files in [ClientFiles::Embedded, ClientFiles::Directory(folder())] {
            let first = get(&files, "/app.js", None).await;
            let (name, value) = match first.headers().get(header::ETAG) {
                Some(etag) => (header::IF_NONE_MATCH, etag.clone()),
                None => (
                    header::IF_MODIFIED_SINCE,
                    first.headers()[header::LAST_MODIFIED].clone(),
                ),
            };
            let request = Request::get("/app.js")
                .header(name, value)
                .body(Body::empty())
                .expect("a request");
            let again = files
                .router(false)
                .oneshot(request)
                .await
                .expect("a response");
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{files:?}");
        }
    }
}
