//! The data directory's volume fails under a running iamd. Full (a small tmpfs, filled by a
//! ballast file): writes answer RESOURCE_EXHAUSTED `STORE_FULL`, reads go on, a failed write
//! leaves no trace, and writes succeed again once the ballast is gone, without a restart.
//! Read-only (ext4 on a loop device, forced read-only by an error, as the kernel does when
//! the disk under it fails): writes answer UNAVAILABLE `STORE_READ_ONLY` and reads go on.
//!
//! Mounting needs root with CAP_SYS_ADMIN. Without it a test says it was skipped; in CI,
//! which runs them as root, it fails instead, so a skip cannot hide that nothing ran.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use http::{Method, StatusCode};
use iamd::pb::iamd::accounts::v1 as accounts;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{JsonReply, TestServer, rpc};

/// A file system mounted for one test, unmounted when the test ends however it ends.
struct Volume {
    mount_point: TempDir,
    /// The ext4 image behind the loop device, when there is one.
    image: Option<tempfile::NamedTempFile>,
}

impl Volume {
    /// A tmpfs of `size` (such as `2m`).
    fn tmpfs(size: &str) -> Option<Volume> {
        let mount_point = tempfile::tempdir().unwrap();
        let options = format!("size={size}");
        mount(&["-t", "tmpfs", "-o", &options, "tmpfs"], mount_point.path())?;
        Some(Volume { mount_point, image: None })
    }

    /// ext4 on a loop device that turns read-only on an error (`errors=remount-ro`).
    fn ext4(megabytes: u64) -> Option<Volume> {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(megabytes << 20).unwrap();
        let made = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image.path()).output();
        if !made.as_ref().is_ok_and(|out| out.status.success()) {
            return skip(&format!("mkfs.ext4 failed: {made:?}"));
        }
        let mount_point = tempfile::tempdir().unwrap();
        mount(&Volume::ext4_options(&image), mount_point.path())?;
        Some(Volume { mount_point, image: Some(image) })
    }

    fn ext4_options(image: &tempfile::NamedTempFile) -> [&str; 3] {
        ["-o", "loop,errors=remount-ro", image.path().to_str().unwrap()]
    }

    /// Unmounts the ext4 volume and mounts it again, as an operator does after a fault
    /// turned it read-only: what was written before the fault comes back.
    fn remount(&self) {
        let image = self.image.as_ref().unwrap();
        let out = Command::new("umount").arg(self.path()).output().unwrap();
        assert!(out.status.success(), "umount: {out:?}");
        let out = Command::new("mount").args(Volume::ext4_options(image)).arg(self.path()).output().unwrap();
        assert!(out.status.success(), "mount: {out:?}");
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// A directory on the volume for iamd's data.
    fn data_dir(&self) -> TempDir {
        tempfile::tempdir_in(self.path()).unwrap()
    }

    /// The kernel's name of the volume's block device (`loop3`).
    fn device(&self) -> String {
        let out = Command::new("findmnt").args(["-n", "-o", "SOURCE"]).arg(self.path()).output().unwrap();
        let source = String::from_utf8(out.stdout).unwrap();
        source.trim().rsplit('/').next().unwrap().to_owned()
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // A server that is still running (a test that failed midway) keeps files open: then
        // detach the mount now and let the kernel finish once they close.
        let unmounted = Command::new("umount").arg(self.path()).output().is_ok_and(|out| out.status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Mounts onto `at`; `None` (after saying so) where this process may not mount.
fn mount(args: &[&str], at: &Path) -> Option<()> {
    let out = Command::new("mount").args(args).arg(at).output();
    match out {
        Ok(out) if out.status.success() => Some(()),
        other => skip(&format!("`mount {}` failed: {other:?}", args.join(" "))),
    }
}

fn skip<T>(why: &str) -> Option<T> {
    // CI runs these as root: there, a skip would hide that nothing ran.
    assert!(std::env::var_os("CI").is_none(), "volume test cannot run in CI: {why}");
    println!("volume test skipped (needs root with CAP_SYS_ADMIN): {why}");
    None
}

/// Writes zeros into `path` until the volume has no space left.
fn fill(path: &Path) -> PathBuf {
    let mut ballast = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    for size in [chunk.len(), 512] {
        loop {
            match ballast.write_all(&chunk[..size]) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("writing the ballast: {e}"),
            }
        }
    }
    path.to_owned()
}

fn reason(reply: &JsonReply) -> &str {
    reply.body["details"][0]["reason"].as_str().unwrap_or_default()
}

async fn create_org(api: &TestServer, name: &str) -> JsonReply {
    api.json(Method::POST, "/organizations", Some(json!({"name": name}))).await
}

/// Every item of a listing, page by page.
async fn all(api: &TestServer, path: &str, field: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let separator = if path.contains('?') { '&' } else { '?' };
        let reply = api.json(Method::GET, &format!("{path}{separator}limit=100&pageToken={token}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        items.extend(reply.body[field].as_array().cloned().unwrap_or_default());
        match reply.body["nextPageToken"].as_str() {
            Some(next) => token = next.to_owned(),
            None => return items,
        }
    }
}

/// What the server holds: every organization with its policies, and the whole history.
async fn state(api: &TestServer) -> Value {
    let mut organizations = Vec::new();
    for org in all(api, "/organizations", "results").await {
        let id = org["id"].as_str().unwrap();
        let policies = all(api, &format!("/organizations/{id}/iam-policies"), "results").await;
        organizations.push(json!({"organization": org, "policies": policies}));
    }
    json!({"organizations": organizations, "events": all(api, "/v1/events", "events").await})
}

/// Reads of every sort answer while writes cannot: single objects (JSON and gRPC), a listing,
/// the history and a check.
async fn reads_answer(api: &TestServer, before: &[(String, Value)]) {
    for (id, body) in before {
        let reply = api.json(Method::GET, &format!("/organizations/{id}"), None).await;
        assert_eq!((reply.status, &reply.body), (StatusCode::OK, body), "organization {id}");
    }
    let (id, body) = &before[0];
    let got: accounts::GetOrganizationResponse = api
        .grpc(rpc::GET_ORGANIZATION.path, accounts::GetOrganizationRequest { organization_id: id.clone() })
        .await
        .unwrap();
    assert_eq!(got.organization.unwrap().name, body["name"].as_str().unwrap());
    let listed = all(api, "/organizations", "results").await;
    assert!(before.iter().all(|(id, _)| listed.iter().any(|o| o["id"] == id.as_str())), "{listed:?}");
    assert!(!all(api, "/v1/events", "events").await.is_empty());
    let check = json!({"subject": "user:local:admin", "action": "iam:users:get", "resource": "iam:users:admin"});
    let reply = api.json(Method::POST, "/v1/authz:check", Some(check)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// The writes that failed left nothing behind: no object and no event names them, and
/// every event belongs to the instance or to an organization the server holds (a refused
/// organization's managed policies would not).
fn no_trace(state: &Value, refused: &[String]) {
    let text = state.to_string();
    for name in refused {
        assert!(!text.contains(&format!("\"{name}\"")), "the refused write of `{name}` left a trace");
    }
    let organizations: Vec<&Value> =
        state["organizations"].as_array().unwrap().iter().map(|o| &o["organization"]["id"]).collect();
    let events = state["events"].as_array().unwrap();
    let instance = &events[0]["resourceOwner"];
    for event in events {
        let owner = &event["resourceOwner"];
        assert!(owner == instance || organizations.contains(&owner), "an event of no organization: {event}");
        if event["objectType"] == "organization" {
            assert!(organizations.contains(&&event["objectId"]), "an event of no organization: {event}");
        }
    }
}

/// Three organizations written while the volume has room: each id, and the answer.
async fn written_before(api: &TestServer) -> Vec<(String, Value)> {
    let mut before = Vec::new();
    for i in 0..3 {
        let reply = create_org(api, &format!("before-{i}")).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        before.push((reply.body["id"].as_str().unwrap().to_owned(), reply.body));
    }
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_volume_refuses_writes_as_resource_exhausted_and_they_resume_when_space_returns() {
    let Some(volume) = Volume::tmpfs("2m") else { return };
    let api = TestServer::start_in(volume.data_dir(), |config| config).await;
    let before = written_before(&api).await;

    let ballast = fill(&volume.path().join("ballast"));
    // The database's files may still have room inside them: write until the volume is the
    // limit. Every write either succeeds or is refused as full, nothing in between.
    let mut refused = Vec::new();
    let mut written = Vec::new();
    for i in 0..400 {
        let name = format!("during-{i}");
        let reply = create_org(&api, &name).await;
        match reply.status {
            StatusCode::CREATED => written.push(name),
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(reason(&reply), "STORE_FULL", "{}", reply.body);
                let message = reply.body["message"].as_str().unwrap();
                assert!(message.contains("volume is full"), "{message}");
                refused.push(name);
            }
            other => panic!("a write on a full volume answered {other}: {}", reply.body),
        }
        if refused.len() == 5 {
            break;
        }
    }
    assert_eq!(refused.len(), 5, "writes kept succeeding on a full volume ({} written)", written.len());

    // The same on gRPC: RESOURCE_EXHAUSTED with the reason.
    let name = "during-grpc".to_owned();
    let status = api
        .grpc::<_, accounts::CreateOrganizationResponse>(
            rpc::CREATE_ORGANIZATION.path,
            accounts::CreateOrganizationRequest { name: name.clone(), domain: String::new() },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.get_details_error_info().unwrap().reason, "STORE_FULL");
    refused.push(name);

    reads_answer(&api, &before).await;

    // Space returns: writes succeed again, on the same server.
    std::fs::remove_file(ballast).unwrap();
    let reply = create_org(&api, "after").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reads_answer(&api, &before).await;

    let served = state(&api).await;
    no_trace(&served, &refused);
    let text = served.to_string();
    assert!(written.iter().all(|name| text.contains(&format!("\"{name}\""))), "{written:?}");
    // The state this server held is what the store holds: a restart reads the same.
    let dir = api.stop().await;
    let api = TestServer::start_in(dir, |config| config).await;
    assert_eq!(state(&api).await, served);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_volume_refuses_writes_as_unavailable_and_reads_go_on() {
    let Some(volume) = Volume::ext4(16) else { return };
    let api = TestServer::start_in(volume.data_dir(), |config| config).await;
    let before = written_before(&api).await;

    // What ext4 does when the disk under it fails: it stops writing at once.
    let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", volume.device());
    std::fs::write(&trigger, "iamd test: the volume turns read-only").unwrap();

    let mut refused = Vec::new();
    for i in 0..3 {
        let name = format!("during-{i}");
        let reply = create_org(&api, &name).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
        assert_eq!(reason(&reply), "STORE_READ_ONLY", "{}", reply.body);
        let message = reply.body["message"].as_str().unwrap();
        assert!(message.contains("volume is read-only"), "{message}");
        refused.push(name);
    }
    let status = api
        .grpc::<_, accounts::CreateOrganizationResponse>(
            rpc::CREATE_ORGANIZATION.path,
            accounts::CreateOrganizationRequest { name: "during-grpc".into(), domain: String::new() },
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.get_details_error_info().unwrap().reason, "STORE_READ_ONLY");
    refused.push("during-grpc".into());

    reads_answer(&api, &before).await;
    let served = state(&api).await;
    no_trace(&served, &refused);

    // The operator mounts the volume again: a server on it holds what this one served.
    let dir = api.stop().await;
    volume.remount();
    let api = TestServer::start_in(dir, |config| config).await;
    assert_eq!(state(&api).await, served);
    let reply = create_org(&api, "after").await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    api.stop().await;
}

/// SQLite folds its log back into the database only every 4 MB; on a volume with less room
/// the log took it all (a 2 MB volume refused writes after 41 organizations) and kept it,
/// across restarts too. The writer folds it back while space is short, so the volume fills
/// with data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_volume_fills_with_data_not_with_the_log() {
    let Some(volume) = Volume::tmpfs("2m") else { return };
    let api = TestServer::start_in(volume.data_dir(), |config| config).await;
    let mut written = 0;
    let reply = loop {
        let reply = create_org(&api, &format!("org-{written}")).await;
        if reply.status != StatusCode::CREATED || written == 2000 {
            break reply;
        }
        written += 1;
    };
    assert_eq!((reply.status, reason(&reply)), (StatusCode::TOO_MANY_REQUESTS, "STORE_FULL"), "{}", reply.body);
    assert!(written >= 300, "a 2 MB volume was full after {written} organizations");
    let served = state(&api).await;
    no_trace(&served, &[format!("org-{written}")]);
    let dir = api.stop().await;
    let api = TestServer::start_in(dir, |config| config).await;
    assert_eq!(state(&api).await, served);
    api.stop().await;
}
