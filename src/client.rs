//! The browser client's files, served at `/`.
//!
//! The files under `client/` are compiled into the binary, so the server alone serves a working
//! client wherever it is copied. For work on the client, [`ClientFiles::Directory`] serves a
//! folder from disk instead, so an edit shows on the next reload without a rebuild.
//!
//! Every response says `Cache-Control: no-cache`: the files are small, and a browser must never
//! combine modules of two different versions after an upgrade.

use std::path::{Component, Path, PathBuf};

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Embedded {
    path: &'static str,
    bytes: &'static [u8],
}

/// Embeds `client/<path>`.
macro_rules! embed {
    ($path:literal) => {
        Embedded {
            path: $path,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/client/", $path)),
        }
    };
}

/// Every file of the client. A unit test checks this list against the folder, so a file added
/// there and forgotten here fails the build's tests rather than a browser.
const EMBEDDED: &[Embedded] = &[
    embed!("index.html"),
    embed!("style.css"),
    embed!("app.js"),
    embed!("call.js"),
    embed!("chat.js"),
    embed!("connection.js"),
    embed!("controls.js"),
    embed!("local-media.js"),
    embed!("roster.js"),
    embed!("signaling.js"),
    embed!("status.js"),
    embed!("tiles.js"),
    embed!("favicon.svg"),
];

/// Where the client's files come from.
#[derive(Debug, Clone, Default)]
pub enum ClientFiles {
    /// The copies compiled into the binary.
    #[default]
    Embedded,
    /// A folder on disk, read on every request (for developing the client).
    Directory(PathBuf),
}

impl ClientFiles {
    /// Answers a `GET` for `uri`: `/` is `index.html`; anything that is not a client file is
    /// 404.
    pub async fn respond(&self, uri: &Uri) -> Response {
        let Some(path) = file_path(uri.path()) else {
            return not_found();
        };
        let bytes = match self {
            ClientFiles::Embedded => EMBEDDED
                .iter()
                .find(|file| file.path == path)
                .map(|file| std::borrow::Cow::Borrowed(file.bytes)),
            ClientFiles::Directory(root) => tokio::fs::read(root.join(&path))
                .await
                .ok()
                .map(std::borrow::Cow::Owned),
        };
        match bytes {
            Some(bytes) => (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(content_type(&path)),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                ],
                bytes,
            )
                .into_response(),
            None => not_found(),
        }
    }
}

/// The relative file a request path names, or `None` when it leaves the folder or names
/// something other than a plain file path.
fn file_path(request: &str) -> Option<String> {
    let relative = request.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let mut parts = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            _ => return None,
        }
    }
    if parts.is_empty() || parts.iter().any(|part| part.starts_with('.')) {
        return None;
    }
    Some(parts.join("/"))
}

/// The `Content-Type` for a file, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_folder_is_embedded_and_nothing_else() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("client");
        let mut on_disk: Vec<String> = std::fs::read_dir(&folder)
            .expect("the client folder exists")
            .map(|entry| {
                let entry = entry.expect("a readable entry");
                assert!(
                    entry.file_type().expect("a file type").is_file(),
                    "the client is one flat folder: {:?}",
                    entry.path()
                );
                entry.file_name().into_string().expect("a UTF-8 name")
            })
            .collect();
        let mut embedded: Vec<String> = EMBEDDED.iter().map(|file| file.path.into()).collect();
        on_disk.sort();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for file in EMBEDDED {
            assert_ne!(
                content_type(file.path),
                "application/octet-stream",
                "{} has no content type",
                file.path
            );
        }
    }

    #[test]
    fn request_paths_stay_inside_the_folder() {
        assert_eq!(file_path("/").as_deref(), Some("index.html"));
        assert_eq!(file_path("/app.js").as_deref(), Some("app.js"));
        assert_eq!(file_path("/a/b.css").as_deref(), Some("a/b.css"));
        assert_eq!(file_path("/../secret"), None);
        assert_eq!(file_path("/a/../../secret"), None);
        assert_eq!(file_path("/.git/config"), None);
        assert_eq!(file_path("//etc/passwd").as_deref(), Some("etc/passwd"));
    }

    #[tokio::test]
    async fn serves_embedded_files_with_their_types() {
        let files = ClientFiles::Embedded;
        let response = files.respond(&Uri::from_static("/")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let response = files.respond(&Uri::from_static("/app.js?v=1")).await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let response = files.respond(&Uri::from_static("/nope.js")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
