//! The `iamd` binary as a process: an answered write survives SIGKILL, and SIGTERM stops it
//! cleanly with every answered write kept.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

pub struct Process {
    pub child: Child,
    pub addr: String,
}

/// A test that fails midway leaves no server running behind it (one would keep the test
/// run's output open).
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data_dir: &Path) -> Process {
    spawn_with(data_dir, &[])
}

/// Starts the `iamd` binary on a free port with extra environment, and reads its address.
pub fn spawn_with(data_dir: &Path, env: &[(&str, &str)]) -> Process {
    spawn_logging(data_dir, env, Stdio::inherit())
}

/// `spawn_with`, its log going to `stderr`.
pub fn spawn_logging(data_dir: &Path, env: &[(&str, &str)], stderr: Stdio) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iamd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("IAMD_BOOTSTRAP_TOKEN", crate::support::TOKEN)
        .env("IAMD_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("iamd listening on http://")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_owned();
    Process { child, addr }
}

/// A client for a server this test did not start in-process.
pub fn client(addr: &str) -> TestServer {
    TestServer::attach(addr.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn(dir.path());
    let api = client(&process.addr);

    // Writes in flight from several tasks; the kill lands while some are still running.
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let api = client(&process.addr);
        tasks.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..1000 {
                let reply = api
                    .try_json(Method::POST, "/organizations", Some(json!({"name": format!("org-{worker}-{i}")})))
                    .await;
                match reply {
                    Some(reply) if reply.status == StatusCode::CREATED => {
                        acknowledged.push(reply.body["id"].as_str().unwrap().to_owned());
                    }
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    let policy = api.json(Method::PUT, "/admin/v1/policies/domain", Some(json!({"validateOrgDomains": true}))).await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    process.child.kill().unwrap(); // SIGKILL
    process.child.wait().unwrap();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(acknowledged.len() >= 10, "too few writes before the kill: {}", acknowledged.len());

    let process = spawn(dir.path());
    let api = client(&process.addr);
    for id in &acknowledged {
        let reply = api.json(Method::GET, &format!("/organizations/{id}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "acknowledged organization {id} was lost: {}", reply.body);
    }
    let reply = api.json(Method::GET, "/admin/v1/policies/domain", None).await;
    assert_eq!(reply.body["policy"]["userLoginMustBeDomain"], serde_json::Value::Null, "{}", reply.body);
    assert_eq!(reply.body["policy"]["validateOrgDomains"], true);
    stop(process);
}

/// Sends the process the stop signal a service manager sends.
pub fn sigterm(process: &Process) {
    let status = Command::new("kill").args(["-TERM", &process.child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// Stops the process with SIGTERM; it must exit cleanly.
pub fn stop(mut process: Process) {
    sigterm(&process);
    let exit = process.child.wait().unwrap();
    assert!(exit.success(), "iamd exited with {exit:?} on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let process = spawn(dir.path());
    let api = client(&process.addr);
    let id = api.create_org("kept").await;
    stop(process);

    let process = spawn(dir.path());
    let reply = client(&process.addr).json(Method::GET, &format!("/organizations/{id}"), None).await;
    assert_eq!(reply.body["name"], "kept");
    stop(process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let mut process = spawn(dir.path());
    let api = client(&process.addr);
    api.create_org("before").await;
    // A request that is in flight when the signal comes: its body arrives in two halves, the
    // second after the signal.
    let body = br#"{"name":"in-flight"}"#;
    let (first, second) = body.split_at(8);
    let mut stream = tokio::net::TcpStream::connect(&process.addr).await.unwrap();
    let head = format!(
        "POST /organizations HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        process.addr,
        crate::support::TOKEN,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sigterm(&process);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(second).await.unwrap();
    // Answered in full after the stop signal, not cut off.
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\"name\":\"in-flight\""), "{answer}");
    assert!(process.child.wait().unwrap().success());
    // Nothing listens any more.
    assert!(api.try_json(Method::GET, "/healthz", None).await.is_none());
}
