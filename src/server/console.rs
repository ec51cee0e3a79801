//! The web console: the files `npm run build` leaves in `console/dist`, embedded at compile
//! time so the binary alone serves them, answered at `/console/` (index.html) and
//! `/console/<file>`. Every answer, errors included, carries a Content-Security-Policy that
//! allows only the console's own script, style and API calls, and refuses framing.
//!
//! A fixed table of the three files rather than a directory-embedding crate: the bundle is
//! three files by construction (console/build.mjs), and a missing one fails the build here.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::body::{ResponseBody, full};

/// The path prefix the console is served under.
const ROOT: &str = "/console/";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; font-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../../console/dist/index.html"),
    },
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../console/dist/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../console/dist/console.css"),
    },
];

/// Each asset's entity tag, from a hash of its bytes, in the order of `ASSETS`.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.bytes);
            let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// Whether the console answers `path` (`/console` itself redirects to `/console/`).
pub fn serves(path: &str) -> bool {
    path == "/console" || path.starts_with(ROOT)
}

/// The answer to a request for a console path: the file (GET, or HEAD without its body), a
/// redirect from `/console`, 304 for a current `If-None-Match`, 404 or 405.
pub fn answer(method: &Method, path: &str, headers: &HeaderMap) -> Response<ResponseBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "the console answers GET and HEAD only\n");
        response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/console" {
        let mut response = plain(StatusCode::PERMANENT_REDIRECT, "the console is at /console/\n");
        response.headers_mut().insert(header::LOCATION, HeaderValue::from_static(ROOT));
        return response;
    }
    let name = match path.strip_prefix(ROOT) {
        Some("") => "index.html",
        Some(name) => name,
        None => "",
    };
    let Some((asset, etag)) = ASSETS.iter().zip(ETAGS.iter()).find(|(asset, _)| asset.name == name) else {
        return plain(StatusCode::NOT_FOUND, "the console has no such file\n");
    };
    let current = headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|list| list.split(',').any(|tag| tag.trim() == "*" || tag.trim() == etag))
    });
    let (status, body) = if current {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.bytes))
    };
    let mut response = secured(status, body, asset.content_type);
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    if status == StatusCode::OK {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.bytes.len()));
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    secured(status, Bytes::from_static(text.as_bytes()), "text/plain; charset=utf-8")
}

/// An answer with the console's security headers. `no-cache` (revalidate by etag) so a new
/// binary's console is seen at once.
fn secured(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response<ResponseBody> {
        answer(&Method::GET, path, &HeaderMap::new())
    }

    #[test]
    fn index_and_assets_with_their_types_and_policy() {
        for (path, kind) in [
            ("/console/", "text/html; charset=utf-8"),
            ("/console/index.html", "text/html; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
        ] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], kind, "{path}");
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert!(headers.contains_key(header::ETAG), "{path}");
        }
        assert!(CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn redirect_missing_files_and_methods() {
        let redirect = get("/console");
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()[header::LOCATION], "/console/");
        for path in ["/console/missing.js", "/console/../Cargo.toml", "/console/dist/console.js"] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(response.headers()[header::CONTENT_SECURITY_POLICY], CSP, "{path}");
        }
        let post = answer(&Method::POST, "/console/", &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
        assert!(serves("/console") && serves("/console/x") && !serves("/consoles") && !serves("/"));
    }

    #[test]
    fn head_and_revalidation() {
        let head = answer(&Method::HEAD, "/console/", &HeaderMap::new());
        assert_eq!(head.status(), StatusCode::OK);
        let length: usize = head.headers()[header::CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
        assert_eq!(length, ASSETS[0].bytes.len());
        let etag = head.headers()[header::ETAG].clone();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.clone());
        let again = answer(&Method::GET, "/console/", &headers);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(answer(&Method::GET, "/console/", &headers).status(), StatusCode::OK);
    }
}
