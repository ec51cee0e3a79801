//! The `iamd` binary's configuration: `iamd config` shows what flags, environment and file
//! make together, and `iamd serve` starts from a file or refuses a bad one by name.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::durability::Process;

/// The binary with none of the test run's own `IAMD_` variables.
fn iamd(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_iamd"));
    command.args(args);
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("IAMD_") {
            command.env_remove(var);
        }
    }
    command
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn config_shows_each_layer_over_the_ones_below_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "iamd.toml",
        "listen = \"127.0.0.1:1\"\ndata_dir = \"/from/file\"\nmax_body_bytes = 1024\n\
         cors_allowed_origins = [\"https://a.example\", \"https://b.example\"]\nbootstrap_token = \"file-t0ken\"\n",
    );
    let output = iamd(&["config", "--config", &file, "--listen", "127.0.0.1:3"])
        .env("IAMD_LISTEN", "127.0.0.1:2")
        .env("IAMD_DATA_DIR", "/from/env")
        .env("IAMD_DATABASE_URL", "postgres://iamd:s3cret@db.example:5432/iam")
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "listen = \"127.0.0.1:3\"  # flag".to_owned(),
        "data_dir = \"/from/env\"  # env IAMD_DATA_DIR".to_owned(),
        format!("max_body_bytes = 1024  # file {file}"),
        format!("cors_allowed_origins = [\"https://a.example\", \"https://b.example\"]  # file {file}"),
        format!("bootstrap_token = \"***\"  # file {file}, masked"),
        "database_url = \"postgres://iamd@db.example:5432/iam\"  # env IAMD_DATABASE_URL, masked".to_owned(),
        "shutdown_grace = \"10s\"  # default".to_owned(),
        "metrics = true  # default".to_owned(),
    ] {
        assert!(printed.lines().any(|printed| printed == line), "no `{line}` in\n{printed}");
    }
    assert!(!printed.contains("s3cret") && !printed.contains("file-t0ken"), "{printed}");
}

#[test]
fn serve_refuses_an_unknown_key_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "listen = \"127.0.0.1:0\"\nmax_body_byte = 1024\n");
    let output = iamd(&["serve", "--config", &file]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("unknown setting `max_body_byte`") && stderr.contains(&file), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn serve_starts_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir_value = toml::Value::String(data_dir.display().to_string());
    let text = format!("listen = \"127.0.0.1:0\"\ndata_dir = {data_dir_value}\nbootstrap_token = \"t0ken\"\n");
    let file = write(dir.path(), "good.toml", &text);
    let mut child = iamd(&["serve", "--config", &file])
        .env("IAMD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut process = Process { child, addr: String::new() };
    // A server that never says it listens fails the test instead of hanging it.
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = lines.recv_timeout(Duration::from_secs(60)).unwrap();
    process.addr = line.trim().strip_prefix("iamd listening on http://").unwrap_or_else(|| panic!("{line}")).to_owned();
    assert!(process.addr.starts_with("127.0.0.1:") && !process.addr.ends_with(":0"), "{line}");
    assert!(data_dir.exists(), "the store is in the file's data_dir");
}
