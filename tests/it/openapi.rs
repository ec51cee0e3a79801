//! The OpenAPI document against a live server: served open at `/openapi.json`, valid OpenAPI
//! 3.1 (Python's `openapi-spec-validator`), and true of the server: schemathesis calls every
//! operation with the bootstrap token, valid and invalid requests alike, and checks each
//! answer against the document (no 5xx; a documented status, content type, headers and
//! schema; a credential required where one is documented; 405 for undocumented methods).
//!
//! Needs both PyPI packages (`.ci/run` installs them). Without them the tests are skipped, or
//! fail when `CI` is set.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::support::{TOKEN, TestServer};

const INSTALL: &str = "pip install schemathesis openapi-spec-validator";

/// Whether `probe` runs; when it does not, the test is skipped, or fails under CI.
fn installed(tool: &str, probe: &mut Command) -> bool {
    let found = probe.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "{tool} is not installed, and CI is set: {INSTALL}");
        println!("skipped: {tool} is not installed ({INSTALL})");
    }
    found
}

async fn fetch_document(server: &TestServer) -> Bytes {
    // No credential: the document is open.
    let request = Request::get(server.url("/openapi.json")).body(Full::new(Bytes::new())).unwrap();
    let (status, headers, body) = server.raw(request).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    body
}

/// Runs `command` in `dir` with its output in `dir/<name>.log`, ended after `limit`; the
/// log, and whether it succeeded.
async fn run(mut command: Command, dir: &Path, name: &str, limit: Duration) -> (bool, String) {
    let log_path = dir.join(format!("{name}.log"));
    let log = File::create(&log_path).unwrap();
    // Into a file, not a pipe: a pipe nobody reads while waiting would fill and stall it.
    command.current_dir(dir).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    let succeeded = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("the command starts");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    (succeeded, std::fs::read_to_string(&log_path).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_served_open_and_validates_as_openapi_3_1() {
    let server = TestServer::start().await;
    let document = fetch_document(&server).await;
    let parsed: Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(parsed["openapi"], "3.1.0");
    assert!(parsed["paths"]["/organizations/{organizationId}"]["get"].is_object());
    // A browser viewer on another origin may load it.
    let request = Request::get(server.url("/openapi.json"))
        .header("origin", "http://viewer.example")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, headers, _) = server.raw(request).await;
    assert_eq!(headers["access-control-allow-origin"], "http://viewer.example");
    // Only GET: another method is the transcoder's, which serves nothing there.
    let reply = server.json(Method::POST, "/openapi.json", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    if !installed("openapi-spec-validator", Command::new("python3").args(["-c", "import openapi_spec_validator"])) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("openapi.json"), &document).unwrap();
    let mut validate = Command::new("python3");
    validate.args([
        "-c",
        "import json, sys\n\
         from openapi_spec_validator import OpenAPIV31SpecValidator, validate\n\
         validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
         print('valid')",
        "openapi.json",
    ]);
    let (valid, log) = run(validate, dir.path(), "validator", Duration::from_secs(120)).await;
    assert!(valid, "/openapi.json is not valid OpenAPI 3.1:\n{log}");
}

/// Makes one object of every kind and answers the schemathesis configuration that sends
/// their ids as the path's: the organization's everywhere, an IAM object's on its own paths.
async fn seed(server: &TestServer) -> String {
    async fn create(server: &TestServer, path: &str, body: Value) -> Value {
        let reply = server.json(Method::POST, path, Some(body)).await;
        assert!(reply.status.is_success(), "POST {path}: {} {}", reply.status, reply.body);
        reply.body
    }
    let org = create(server, "/organizations", json!({"name": "schemathesis"})).await["id"].clone();
    let org = org.as_str().unwrap();
    let policy = json!({"name": "p", "definitions": [{"effect": "allow", "resources": ["/x/*"], "actions": ["view"]}]});
    let policy = create(server, &format!("/organizations/{org}/iam-policies"), policy).await["id"].clone();
    let role = json!({"name": "r", "policyIds": [policy]});
    let role = create(server, &format!("/organizations/{org}/iam-roles"), role).await["id"].clone();
    let assignment = json!({"principal": "user:local:alice", "roleIds": [role]});
    let assignment = create(server, &format!("/organizations/{org}/iam-assignments"), assignment).await["id"].clone();
    let iam = [
        ("users", json!({"id": "alice", "name": "Alice", "properties": {"level": "gold"}})),
        ("teams", json!({"id": "eng", "name": "Eng"})),
        ("tokens", json!({"id": "ci", "name": "CI"})),
        ("tenants", json!({"id": "t1", "name": "T1"})),
        ("roles", json!({"id": "r1", "name": "R1", "actions": ["iam:users:get"]})),
        (
            "policies",
            json!({"id": "p1", "name": "P1", "members": ["team:local:eng"],
                   "statements": [{"effect": "ALLOW", "actions": ["iam:users:get"], "resources": ["*"], "tenants": ["*"]}]}),
        ),
    ];
    let mut config = format!(
        "[parameters]\norgId = \"{org}\"\norganizationId = \"{org}\"\npolicyId = {policy}\nroleId = {role}\n\
         assignmentId = {assignment}\n"
    );
    for (kind, body) in iam {
        let id = body["id"].clone();
        create(server, &format!("/iam/{kind}"), body).await;
        config.push_str(&format!(
            "\n[[operations]]\ninclude-path-regex = \"^/iam/{kind}/\\\\{{id\\\\}}\"\nparameters = {{ id = {id} }}\n"
        ));
    }
    config
}

/// The checks schemathesis applies to every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance,ignored_auth,unsupported_method";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_server_true_to_its_document() {
    // Through the interpreter pip installs into, whatever is on PATH.
    let schemathesis = || {
        let mut command = Command::new("python3");
        command.args(["-m", "schemathesis.cli"]);
        command
    };
    if !installed("schemathesis", schemathesis().arg("--version")) {
        return;
    }
    let server = TestServer::start().await;
    let url = server.url("/openapi.json");
    let dir = tempfile::tempdir().unwrap();
    // Random ids find nothing but 404s; objects that exist let answers with bodies be checked.
    std::fs::write(dir.path().join("schemathesis.toml"), seed(&server).await).unwrap();
    // The run may delete or deactivate the token it calls with, which it finds in the token
    // list, and then every later call is 401: the two calls that can do that go last, on
    // their own, so the rest is tested with a working credential.
    let token_writes = ["--include-path-regex", r"^/iam/tokens/\{id\}$", "--include-method-regex", "^(PUT|DELETE)$"];
    let passes = [
        ("every operation but the token writes", token_writes.map(|arg| arg.replacen("--include", "--exclude", 1))),
        ("the token writes", token_writes.map(str::to_owned)),
    ];
    for (index, (what, filter)) in passes.iter().enumerate() {
        let mut run_once = schemathesis();
        run_once
            .args(["--no-color", "--config-file", "schemathesis.toml", "run", &url])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--checks", CHECKS])
            // Bounded: a few dozen requests per operation, in about a minute on 2 cores. One
            // worker: with threads, Hypothesis's description of its own strategies now and then
            // fails inside the tool ("AST constructor recursion depth mismatch").
            .args(["--max-examples", "20", "--workers", "1", "--request-timeout", "10"])
            .args(filter);
        let (passed, log) = run(run_once, dir.path(), &format!("pass-{index}"), Duration::from_secs(240)).await;
        let summary = log.lines().rev().find(|l| l.contains("passed") || l.contains("fail")).unwrap_or_default();
        println!("schemathesis, {what}: {summary}");
        assert!(passed, "schemathesis found the server and /openapi.json apart ({what}):\n{log}");
    }
}
