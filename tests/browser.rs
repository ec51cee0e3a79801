//! Browser tests, in headless Chromium (Debian's `chromium`, driven by `playwright-core`):
//! connect-web's gRPC-web transport from a page of another origin than the API, and iamd's own
//! web console.
//!
//! Each needs its npm packages (`npm ci --prefix tests/browser`, `npm ci --prefix console`)
//! and `/usr/bin/chromium` (`apt-get install -y chromium`). Without them a test is skipped, or
//! fails when `CI` is set.

use std::convert::Infallible;
use std::error::Error;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn Error>>;

const TOKEN: &str = "browser-test-token";
const CONSOLE_TOKEN: &str = "console-test-token";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A page served from another origin than the API calls `OrganizationService` through
/// `@connectrpc/connect-web`'s gRPC-web transport (code from `buf generate` +
/// `protoc-gen-es`), once succeeding and once failing, and the test reads both outcomes from
/// the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_from_another_origin() -> TestResult {
    let started = Instant::now();
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(reason) = missing_prerequisites(&browser_dir, "tests/browser") {
        if std::env::var_os("CI").is_some() {
            return Err(format!("the browser test cannot run in CI: {reason}").into());
        }
        println!("browser test skipped: {reason}");
        return Ok(());
    }

    // The generated client must match the current protos: build it every time.
    let build =
        run(Command::new("npm").args(["run", "build"]).current_dir(&browser_dir), Duration::from_secs(180)).await?;
    if !build.success {
        return Err(format!("`npm run build` in tests/browser failed:\n{}\n{}", build.stdout, build.stderr).into());
    }

    let tmp = tempfile::tempdir()?;
    let server = iamd::server::start(iamd::config::Config {
        bootstrap_token: Some(TOKEN.into()),
        ..iamd::config::Config::for_data_dir(tmp.path())
    })
    .await?;
    let api = format!("http://{}", server.addr);

    // The page comes from a second listener: same host, another port, so another origin.
    let pages = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let page_addr = pages.local_addr()?;
    let static_server = tokio::spawn(serve_static(pages, browser_dir.join("public")));
    let page_origin = format!("http://{page_addr}");
    assert_ne!(page_origin, api, "the page and the API must be different origins");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let name = format!("browser-{}-{}", now.as_millis(), std::process::id());
    let url = format!("{page_origin}/index.html?api={api}&token={TOKEN}&name={name}");
    let browser = run(Command::new("node").arg(browser_dir.join("run.mjs")).arg(&url), Duration::from_secs(90)).await;
    static_server.abort();
    let browser = browser?;
    if !browser.stderr.trim().is_empty() {
        eprintln!("browser stderr:\n{}", browser.stderr);
    }
    if !browser.success {
        return Err(format!("run.mjs failed for {url}:\n{}\n{}", browser.stdout, browser.stderr).into());
    }
    let line = browser.stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    println!("page result: {line}");
    let result: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line:?}"))?;

    // The page really ran on its own origin and called the API cross-origin.
    assert_eq!(result["pageOrigin"], page_origin.as_str(), "{result}");
    assert_eq!(result["api"], api.as_str(), "{result}");

    // Call 1: CreateOrganization succeeded.
    let id =
        result["ok"]["id"].as_str().ok_or_else(|| format!("CreateOrganization failed in the browser: {result}"))?;
    uuid::Uuid::parse_str(id).map_err(|e| format!("the id `{id}` is not a UUID: {e}"))?;
    assert_eq!(result["ok"]["name"], name.as_str(), "{result}");

    // Call 2: GetOrganization of a missing id failed with NotFound and a message.
    assert_eq!(result["error"]["code"], 5, "expected NotFound: {result}");
    let message = result["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "the error has no message: {result}");

    // The organization exists on the server: read it back over plain HTTP/JSON.
    let (status, body) = get_json(&format!("{api}/organizations/{id}")).await?;
    assert_eq!(status, StatusCode::OK, "GET /organizations/{id}: {body}");
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["name"], name.as_str(), "{body}");

    // And the CORS preflight the browser needed is answered for the page's origin.
    let preflight = preflight(&api, &page_origin).await?;
    assert_eq!(preflight.as_deref(), Some(page_origin.as_str()), "access-control-allow-origin of the preflight");

    server.stop().await?;
    println!("browser test passed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The console: builds it (`npm run build` in `console/`), starts iamd, which serves
/// it at `/console/` from the bytes embedded at compile time, and runs `console/test/console.mjs`
/// in headless Debian Chromium (`playwright-core`): sign in with the bootstrap token, create an
/// organization and an IAM v2 policy with a member, simulate an unsaved DENY before saving it,
/// save, find the change in the policy's history, visit every page, then sign in with a token
/// that has no policy and see the permission message. Screenshots of every page go to
/// `CONSOLE_SCREENSHOTS` (default `target/console-screenshots/`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() -> TestResult {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let console_dir = root.join("console");
    if let Some(reason) = missing_prerequisites(&console_dir, "console") {
        if std::env::var_os("CI").is_some() {
            return Err(format!("the console test cannot run in CI: {reason}").into());
        }
        println!("console test skipped: {reason}");
        return Ok(());
    }

    let build =
        run(Command::new("npm").args(["run", "build"]).current_dir(&console_dir), Duration::from_secs(180)).await?;
    if !build.success {
        return Err(format!("`npm run build` in console/ failed:\n{}\n{}", build.stdout, build.stderr).into());
    }

    let tmp = tempfile::tempdir()?;
    let server = iamd::server::start(iamd::config::Config {
        bootstrap_token: Some(CONSOLE_TOKEN.into()),
        ..iamd::config::Config::for_data_dir(tmp.path())
    })
    .await?;
    let base = format!("http://{}", server.addr);

    // The server answers what this build of the sources made; a binary built before the
    // sources changed embeds an older bundle, and testing that would test nothing.
    for file in ["index.html", "console.js", "console.css"] {
        let served = get(&format!("{base}/console/{file}")).await?;
        let built = std::fs::read(console_dir.join("dist").join(file))?;
        if served != built {
            return Err(format!(
                "the server embeds an older console/dist/{file} than `npm run build` just made: \
                 run the test again (cargo rebuilds with the new bundle) and commit console/dist"
            )
            .into());
        }
    }

    let screenshots = std::env::var_os("CONSOLE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/console-screenshots"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let browser = run(
        Command::new("node")
            .arg(console_dir.join("test/console.mjs"))
            .env("CONSOLE_URL", &base)
            .env("CONSOLE_TOKEN", CONSOLE_TOKEN)
            .env("CONSOLE_SCREENSHOTS", &screenshots)
            .env("CONSOLE_RUN_ID", format!("{}{}", now.as_millis(), std::process::id())),
        Duration::from_secs(240),
    )
    .await;
    server.stop().await?;
    let browser = browser?;
    println!("{}", browser.stdout);
    if !browser.stderr.trim().is_empty() {
        eprintln!("browser stderr:\n{}", browser.stderr);
    }
    if !browser.success {
        return Err(format!("console/test/console.mjs failed:\n{}\n{}", browser.stdout, browser.stderr).into());
    }
    println!(
        "console test passed in {:.1}s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
    Ok(())
}

/// Why a test cannot run here, if it cannot: `dir` (`name` in the repository) needs its npm
/// packages, and Debian's Chromium.
fn missing_prerequisites(dir: &Path, name: &str) -> Option<String> {
    let mut missing = Vec::new();
    if !dir.join("node_modules").is_dir() {
        missing.push(format!("{name}/node_modules is missing (run `npm ci --prefix {name}`)"));
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push("/usr/bin/chromium is missing (run `apt-get install -y chromium`)".to_owned());
    }
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// The body of a GET, which must answer 200.
async fn get(url: &str) -> Result<Vec<u8>, Box<dyn Error>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.request(Request::get(url).header(header::ACCEPT, "*/*").body(Empty::new())?).await?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()).into());
    }
    Ok(response.into_body().collect().await?.to_bytes().to_vec())
}

struct Finished {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs a command to completion off the runtime's threads, killing it after `limit`.
async fn run(command: &mut Command, limit: Duration) -> Result<Finished, Box<dyn Error>> {
    let described = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {described}: {e}"))?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let waited = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("timed out after {limit:?}"));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await?;
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match waited {
        Ok(status) => Ok(Finished { success: status.success(), stdout, stderr }),
        Err(e) => Err(format!("{described}: {e}\nstdout:\n{stdout}\nstderr:\n{stderr}").into()),
    }
}

/// A tiny static file server for `root` (GET only, no directory listings).
async fn serve_static(listener: TcpListener, root: PathBuf) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let root = root.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = static_file(&root, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn static_file(root: &Path, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, kind: &'static str, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
        response
    };
    if method != Method::GET && method != Method::HEAD {
        return answer(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b"GET only\n".to_vec());
    }
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "index.html" } else { relative };
    if relative.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec());
    }
    let kind = match Path::new(relative).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    match std::fs::read(root.join(relative)) {
        Ok(bytes) => answer(StatusCode::OK, kind, bytes),
        Err(_) => answer(StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET over HTTP/1.1 JSON with the bootstrap token.
async fn get_json(url: &str) -> Result<(StatusCode, serde_json::Value), Box<dyn Error>> {
    let request = Request::get(url)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::ACCEPT, "application/json")
        .body(Empty::new())?;
    let response = client().request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let body = serde_json::from_slice(&bytes)
        .map_err(|e| format!("GET {url}: {status}, not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))?;
    Ok((status, body))
}

/// The `access-control-allow-origin` the API answers to the preflight Chromium sends before a
/// gRPC-web call from `origin`.
async fn preflight(api: &str, origin: &str) -> Result<Option<String>, Box<dyn Error>> {
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("{api}/iamd.accounts.v1.OrganizationService/CreateOrganization"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type,x-grpc-web,x-user-agent")
        .body(Empty::new())?;
    let response = client().request(request).await?;
    let allowed = response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN);
    Ok(allowed.and_then(|v| v.to_str().ok()).map(str::to_owned))
}
