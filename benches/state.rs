//! State benchmark: how start-up, memory and reads grow with the number of objects, and
//! that they grow with state, not with history.
//!
//! For each store (SQLite, on disk) it builds, the bench
//! 1. populates it in-process through the object model: N organizations (1k, 10k, 100k),
//!    plus 100k small objects of a test-only kind owned by them (1,000 under the first
//!    organization, the rest spread evenly), and the instance's default domain policy;
//! 2. starts the server as a child process (this binary in serve mode) and times it from
//!    spawn to ready (the `listening` line, printed once the state is loaded), then reads
//!    its resident memory (VmRSS, VmHWM);
//! 3. times over native gRPC, one request at a time: a `GetOrganization` of a random
//!    organization, and a `ListOrganizations` page of 100 from a token in the middle;
//! 4. in-process, opens a replica on the same store and times a page of 100 of the first
//!    organization's owned objects (the children index alone).
//!
//! Two more stores hold the same state of 10k organizations and 10k objects, one with an
//! event per object and one with eight (each object changed seven times more): their
//! start-ups are compared in the same run, alternating. On SQLite, and on PostgreSQL too
//! when `IAMD_BENCH_DATABASE_URL` or `IAMD_TEST_DATABASE_URL` names a database (each store
//! in a scratch schema). And the bytes an event stores for adding one member to a 10- and
//! to a 1,000-member object.
//!
//! Run: `cargo bench --bench state` (see BENCHMARKS.md). `IAMD_BENCH_SIZES=1000,10000`
//! picks the sizes; `IAMD_BENCH_READS` the requests per read measurement (default 3000).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::scratch_schema;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use iamd::config::{Config, Secret};
use iamd::kinds::domain_policy::{DomainPolicy, DomainPolicyEvent, DomainSettings};
use iamd::kinds::organization::{Organization, OrganizationEvent};
use iamd::model::draft::Draft;
use iamd::model::kind::{Kind, OnDelete, Term};
use iamd::model::registry::Registry;
use iamd::model::replica::Replica;
use iamd::pb::iamd::accounts::v1 as pb;
use iamd::store::LogCursor;
use pb::organization_service_client::OrganizationServiceClient;

mod common;

const CHILDREN: usize = 100_000;
/// Organizations (and as many items) of the stores that compare history lengths.
const HISTORY_ORGS: usize = 10_000;
const FIRST_ORG_CHILDREN: usize = 1_000;
const BATCH: usize = 2_000;
const SERVE_DIR: &str = "IAMD_BENCH_SERVE_DIR";
const SERVE_URL: &str = "IAMD_BENCH_SERVE_DATABASE_URL";

/// Where a store is: a data directory, and the PostgreSQL schema when it is not SQLite.
struct Place {
    dir: PathBuf,
    url: Option<String>,
}

impl Place {
    fn config(&self) -> Config {
        Config { database_url: self.url.as_deref().map(Secret::new), ..Config::for_data_dir(&self.dir) }
    }
}

/// A small object owned by an organization, with members (a lookup term).
struct Item;

#[derive(Clone, Serialize, Deserialize)]
struct ItemState {
    label: String,
    members: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
enum ItemEvent {
    #[serde(rename = "item.added")]
    Added { label: String },
    #[serde(rename = "item.members.added")]
    MembersAdded { members: Vec<String> },
    #[serde(rename = "item.relabelled")]
    Relabelled { label: String },
    #[serde(rename = "item.removed")]
    Removed {},
}

impl Kind for Item {
    const NAME: &'static str = "bench_item";
    type State = ItemState;
    type Event = ItemEvent;

    fn apply(state: Option<&ItemState>, event: &ItemEvent) -> Result<Option<ItemState>, String> {
        match (state, event) {
            (None, ItemEvent::Added { label }) => Ok(Some(ItemState { label: label.clone(), members: Vec::new() })),
            (Some(state), ItemEvent::MembersAdded { members }) => {
                let mut next = state.clone();
                next.members.extend(members.iter().cloned());
                Ok(Some(next))
            }
            (Some(state), ItemEvent::Relabelled { label }) => {
                Ok(Some(ItemState { label: label.clone(), ..state.clone() }))
            }
            (Some(_), ItemEvent::Removed {}) => Ok(None),
            _ => Err("does not apply".into()),
        }
    }

    fn removal(_: &ItemState) -> ItemEvent {
        ItemEvent::Removed {}
    }

    fn terms(state: &ItemState) -> Vec<Term> {
        state.members.iter().map(|m| Term::new("member", m.as_str())).collect()
    }

    fn on_delete(_: &'static str) -> OnDelete {
        OnDelete::Cascade
    }
}

fn registry() -> Registry {
    iamd::kinds::registry().with::<Item>()
}

fn org_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn item_id(n: usize) -> String {
    format!("item-{n:06}")
}

async fn replica(place: &Place) -> Arc<Replica> {
    let store = iamd::store::open(&place.config()).await.unwrap();
    Replica::open(store, registry(), Duration::from_millis(50)).await.unwrap()
}

/// Plans with `f` against the replica's state and commits it.
async fn write(replica: &Replica, f: impl FnOnce(&mut Draft<'_>)) -> iamd::model::replica::Written {
    let plan = {
        let objects = replica.read().unwrap();
        let mut draft = Draft::new(&objects);
        f(&mut draft);
        draft.finish()
    };
    replica.commit("bench", plan).await.unwrap()
}

/// `orgs` organizations and `children` items (`FIRST_ORG_CHILDREN` of them, at most, under
/// the first organization), then `changes` rounds in which every organization is renamed and
/// every item relabelled: more history, a state of the same size.
async fn populate(place: &Place, orgs: usize, children: usize, changes: usize) {
    let replica = replica(place).await;
    let instance = replica.store().instance().await.unwrap().id;
    write(&replica, |d| {
        let seeded = DomainPolicyEvent::InstanceAdded(DomainSettings::from_org_iam(true));
        d.create::<DomainPolicy>(&instance, &instance, seeded).unwrap();
    })
    .await;
    for start in (0..orgs).step_by(BATCH) {
        write(&replica, |d| {
            for n in start..(start + BATCH).min(orgs) {
                let event = OrganizationEvent::Added { name: format!("org-{n}"), domain: format!("org-{n}.example") };
                d.create::<Organization>(&org_id(n), &org_id(n), event).unwrap();
            }
        })
        .await;
    }
    let owner = |n: usize| if n < FIRST_ORG_CHILDREN { 0 } else { n % orgs };
    for start in (0..children).step_by(BATCH) {
        write(&replica, |d| {
            for n in start..(start + BATCH).min(children) {
                d.create::<Item>(&item_id(n), &org_id(owner(n)), ItemEvent::Added { label: format!("item {n}") })
                    .unwrap();
            }
        })
        .await;
    }
    for round in 1..=changes {
        for start in (0..orgs).step_by(BATCH) {
            let current: Vec<_> = {
                let objects = replica.read().unwrap();
                (start..(start + BATCH).min(orgs)).map(|n| objects.get::<Organization>(&org_id(n)).unwrap()).collect()
            };
            write(&replica, |d| {
                for org in &current {
                    let name = format!("{}-{round}", org.name.split('-').take(2).collect::<Vec<_>>().join("-"));
                    let event = OrganizationEvent::Changed { name: Some(name), domain: None };
                    d.change(org, event).unwrap();
                }
            })
            .await;
        }
        for start in (0..children).step_by(BATCH) {
            let current: Vec<_> = {
                let objects = replica.read().unwrap();
                (start..(start + BATCH).min(children)).map(|n| objects.get::<Item>(&item_id(n)).unwrap()).collect()
            };
            write(&replica, |d| {
                for item in &current {
                    let label = item.label.replace("item", &format!("i{round}"));
                    d.change(item, ItemEvent::Relabelled { label }).unwrap();
                }
            })
            .await;
        }
    }
    replica.close().await.unwrap();
}

/// This binary in serve mode: iamd with the bench kind, until stdin closes.
fn serve(place: Place) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..place.config() };
        let server = iamd::server::start_with(config, registry()).await.unwrap();
        // The parent closes stdin when it is done.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
        server.stop().await.unwrap();
    });
}

struct Started {
    child: Child,
    addr: String,
    ready: Duration,
}

fn start(place: &Place) -> Started {
    let began = Instant::now();
    let mut command = Command::new(std::env::current_exe().unwrap());
    if let Some(url) = &place.url {
        command.env(SERVE_URL, url);
    }
    let mut child = command
        .env(SERVE_DIR, &place.dir)
        .env("IAMD_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready = began.elapsed();
    let addr = line.trim().strip_prefix("iamd listening on http://").unwrap_or_else(|| panic!("{line}")).to_owned();
    Started { child, addr, ready }
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn stop(mut started: Started) {
    drop(started.child.stdin.take());
    started.child.wait().unwrap();
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// A small deterministic generator, so runs pick the same organizations.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// p50 and p99 in µs of `reads` calls of `call`, after 200 not timed.
async fn time<F, Fut>(reads: usize, mut call: F) -> (u64, u64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..200 {
        call(i).await;
    }
    let mut h = histogram();
    for i in 0..reads {
        let began = Instant::now();
        call(i).await;
        h.record(began.elapsed().as_micros().max(1) as u64).unwrap();
    }
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
}

struct Row {
    orgs: usize,
    objects: usize,
    events: u64,
    ready_ms: f64,
    load_ms: f64,
    rss: f64,
    hwm: f64,
    get: (u64, u64),
    list: (u64, u64),
    children: (u64, u64),
}

async fn measure(place: &Place, orgs: usize, reads: usize) -> Row {
    let ready_ms = started_ready(place).as_secs_f64() * 1000.0;
    let started = start(place);
    let (rss, hwm) = memory(started.child.id());
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", started.addr)).unwrap().connect().await.unwrap();
    let mut client = OrganizationServiceClient::new(channel);
    let mut random = Lcg(42);
    let get = time(reads, |_| {
        let id = org_id(random.below(orgs));
        let mut client = client.clone();
        async move {
            let reply =
                client.get_organization(pb::GetOrganizationRequest { organization_id: id.clone() }).await.unwrap();
            assert_eq!(reply.get_ref().organization.as_ref().map(|o| o.id.as_str()), Some(id.as_str()));
        }
    })
    .await;
    // A token from the middle of the list.
    let mut token = String::new();
    for _ in 0..(orgs / 200).max(1) {
        let page = client
            .list_organizations(pb::ListOrganizationsRequest {
                limit: Some(100),
                page_token: token.clone(),
                reverse: false,
            })
            .await
            .unwrap();
        token = page.into_inner().next_page_token.unwrap_or_default();
    }
    let list = time(reads, |_| {
        let (mut client, token) = (client.clone(), token.clone());
        async move {
            let page = client
                .list_organizations(pb::ListOrganizationsRequest {
                    limit: Some(100),
                    page_token: token,
                    reverse: false,
                })
                .await
                .unwrap();
            assert_eq!(page.get_ref().results.len(), 100.min(orgs));
        }
    })
    .await;
    stop(started);

    // In-process: the load alone, and the children index.
    let began = Instant::now();
    let replica = replica(place).await;
    let load_ms = began.elapsed().as_secs_f64() * 1000.0;
    let objects = replica.read().unwrap().len();
    let events = replica.store().read_log(None, LogCursor::default(), u32::MAX).await.unwrap().len() as u64;
    let first = org_id(0);
    let middle = {
        let objects = replica.read().unwrap();
        let page = objects.page::<Item>(&first, None, false, FIRST_ORG_CHILDREN / 2);
        page.last().map(|item| (item.meta.created_at, item.id.to_string())).unwrap()
    };
    let children = time(reads * 10, |_| {
        let objects = replica.read().unwrap();
        let page = objects.page::<Item>(&first, Some((middle.0, &middle.1)), false, 100);
        assert_eq!(page.len(), 100);
        std::future::ready(())
    })
    .await;
    replica.close().await.unwrap();
    Row { orgs, objects, events, ready_ms, load_ms, rss, hwm, get, list, children }
}

/// Time to ready of a fresh start: the median of three.
fn started_ready(place: &Place) -> Duration {
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let started = start(place);
            let ready = started.ready;
            stop(started);
            ready
        })
        .collect();
    times.sort();
    times[1]
}

/// Bytes the event of adding one member stores, for a 10- and a 1,000-member object.
async fn member_add_bytes(place: &Place) -> Vec<(usize, usize)> {
    let replica = replica(place).await;
    let owner = org_id(0);
    let mut out = Vec::new();
    for (n, members) in [(0usize, 10usize), (1, 1_000)] {
        let id = format!("members-{n}");
        write(&replica, |d| d.create::<Item>(&id, &owner, ItemEvent::Added { label: id.clone() }).unwrap()).await;
        let item = replica.read().unwrap().get::<Item>(&id).unwrap();
        let all = (0..members).map(|m| format!("user:local:member-{m:05}")).collect();
        write(&replica, |d| d.change(&item, ItemEvent::MembersAdded { members: all }).unwrap()).await;
        let item = replica.read().unwrap().get::<Item>(&id).unwrap();
        let one = vec!["user:local:newcomer".to_owned()];
        let written = write(&replica, |d| d.change(&item, ItemEvent::MembersAdded { members: one }).unwrap()).await;
        let log = replica.store().read_log(Some((Item::NAME, &id)), LogCursor::default(), 10).await.unwrap();
        let event = log.iter().find(|c| Some(c.event.position) == written.position).unwrap();
        let bytes = event.event.event_type.len() + event.event.payload.to_string().len();
        let members_now = replica.read().unwrap().get::<Item>(&id).unwrap().members.len();
        assert_eq!(members_now, members + 1);
        assert_eq!(
            replica.read().unwrap().lookup("member", "user:local:newcomer").filter(|k| k.kind == Item::NAME).count(),
            n + 1
        );
        out.push((members, bytes));
    }
    replica.close().await.unwrap();
    out
}

/// Start-ups of two stores of the same state, `long` with eight times the history.
struct History {
    flat_events: usize,
    long_events: usize,
    flat_ms: Vec<f64>,
    long_ms: Vec<f64>,
}

async fn history(flat: &Place, long: &Place) -> History {
    let began = Instant::now();
    populate(flat, HISTORY_ORGS, HISTORY_ORGS, 0).await;
    populate(long, HISTORY_ORGS, HISTORY_ORGS, 7).await;
    eprintln!("populated the history stores in {:.1?}", began.elapsed());
    // Both in the same stretch of time, alternating, so the machine's noise falls on both.
    let (mut flat_ms, mut long_ms) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        flat_ms.push(started_ready(flat).as_secs_f64() * 1000.0);
        long_ms.push(started_ready(long).as_secs_f64() * 1000.0);
    }
    flat_ms.sort_by(f64::total_cmp);
    long_ms.sort_by(f64::total_cmp);
    let events = async |place: &Place| {
        let store = iamd::store::open(&place.config()).await.unwrap();
        let n = store.read_log(None, LogCursor::default(), u32::MAX).await.unwrap().len();
        store.close().await.unwrap();
        n
    };
    History { flat_events: events(flat).await, long_events: events(long).await, flat_ms, long_ms }
}

fn main() {
    if let Ok(dir) = std::env::var(SERVE_DIR) {
        return serve(Place { dir: dir.into(), url: std::env::var(SERVE_URL).ok() });
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let sizes: Vec<usize> = std::env::var("IAMD_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let reads: usize = std::env::var("IAMD_BENCH_READS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        // On the repository's disk (not a tmpfs) unless told otherwise, inside target/ so
        // that an interrupted run leaves nothing in the tree.
        let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let root = tempfile::tempdir_in(std::env::var_os("IAMD_BENCH_DIR").map_or(target, Into::into)).unwrap();
        let mut rows = Vec::new();
        for &orgs in &sizes {
            let place = Place { dir: root.path().join(format!("orgs-{orgs}")), url: None };
            let began = Instant::now();
            populate(&place, orgs, CHILDREN, 0).await;
            eprintln!("populated {orgs} organizations + {CHILDREN} objects in {:.1?}", began.elapsed());
            rows.push(measure(&place, orgs, reads).await);
        }
        let sqlite = |name: &str| Place { dir: root.path().join(name), url: None };
        let (flat, long) = (sqlite("history-1x"), sqlite("history-8x"));
        let mut histories = vec![("SQLite", history(&flat, &long).await)];
        let database = std::env::var("IAMD_BENCH_DATABASE_URL").or_else(|_| std::env::var("IAMD_TEST_DATABASE_URL"));
        if let Ok(base) = database {
            let (admin, flat_url, flat_schema) = scratch_schema(&base).await;
            let (_, long_url, long_schema) = scratch_schema(&base).await;
            let postgres = |name: &str, url: String| Place { dir: root.path().join(name), url: Some(url) };
            let (pg_flat, pg_long) = (postgres("pg-history-1x", flat_url), postgres("pg-history-8x", long_url));
            histories.push(("PostgreSQL", history(&pg_flat, &pg_long).await));
            admin.batch_execute(&format!("DROP SCHEMA {flat_schema} CASCADE; DROP SCHEMA {long_schema} CASCADE")).await.unwrap();
        }
        let bytes = member_add_bytes(&flat).await;

        println!("| organizations | objects | events | start-up to ready (median of 3) | load in-process | RSS after start | peak RSS | GetOrganization p50 / p99 µs | ListOrganizations(100) p50 / p99 µs | 100 owned objects, in-process p50 / p99 µs |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} MiB | {:.0} MiB | {} / {} | {} / {} | {} / {} |",
                r.orgs, r.objects, r.events, r.ready_ms, r.load_ms, r.rss, r.hwm, r.get.0, r.get.1, r.list.0, r.list.1,
                r.children.0, r.children.1
            );
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            println!();
            println!(
                "GetOrganization p50 at {} organizations / at {}: {:.2}",
                last.orgs,
                first.orgs,
                last.get.0 as f64 / first.get.0 as f64
            );
        }
        println!();
        println!("| store | state | events | start-up to ready, 5 runs (median of 3 each), ms |");
        println!("|---|---|---:|---|");
        let state = format!("{HISTORY_ORGS} organizations + {HISTORY_ORGS} objects");
        for (store, h) in &histories {
            let runs = |ms: &[f64]| ms.iter().map(|m| m.round()).collect::<Vec<_>>();
            println!("| {store} | {state}, one event each | {} | {:?} |", h.flat_events, runs(&h.flat_ms));
            println!("| {store} | the same, every object changed 7 times more | {} | {:?} |", h.long_events, runs(&h.long_ms));
        }
        println!();
        for (store, h) in &histories {
            let (flat, long) = (h.flat_ms[2], h.long_ms[2]);
            println!(
                "{store}: start-up with 8x history / without: {:.2} (median {long:.0} ms / {flat:.0} ms; the target is at most 2x + 30 ms = {:.0} ms)",
                long / flat,
                2.0 * flat + 30.0
            );
        }
        println!();
        println!("| members before | bytes of the member-add event (type + payload) |");
        println!("|---:|---:|");
        for (members, bytes) in bytes {
            println!("| {members} | {bytes} |");
        }
    });
}
