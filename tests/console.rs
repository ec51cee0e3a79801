//! Console test: builds the console (`npm run build` in `console/`), starts iamd, which serves
//! it at `/console/` from the bytes embedded at compile time, and runs `console/test/console.mjs`
//! in headless Debian Chromium (`playwright-core`): sign in with the bootstrap token, create an
//! organization and an IAM v2 policy with a member, simulate an unsaved DENY before saving it,
//! save, find the change in the policy's history, visit every page, then sign in with a token
//! that has no policy and see the permission message. Screenshots of every page go to
//! `CONSOLE_SCREENSHOTS` (default `target/console-screenshots/`).
//!
//! Needs `console/node_modules` (`npm ci --prefix console`) and `/usr/bin/chromium`. Without
//! them the test is skipped, or fails when `CI` is set.

use std::error::Error;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type TestResult = Result<(), Box<dyn Error>>;

const TOKEN: &str = "console-test-token";
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_chromium() -> TestResult {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let console_dir = root.join("console");
    if let Some(reason) = missing_prerequisites(&console_dir) {
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
        bootstrap_token: Some(TOKEN.into()),
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
            .env("CONSOLE_TOKEN", TOKEN)
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

/// Why the test cannot run here, if it cannot.
fn missing_prerequisites(console_dir: &Path) -> Option<String> {
    let mut missing = Vec::new();
    if !console_dir.join("node_modules").is_dir() {
        missing.push("console/node_modules is missing (run `npm ci --prefix console`)");
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push("/usr/bin/chromium is missing (run `apt-get install -y chromium`)");
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
