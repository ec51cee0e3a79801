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
//! The IAM v2 surface on two more stores (SQLite): 100 and 10,000 policies of 10 statements
//! (statement j grants the custom role `r{j}` on the tenant `t{j}`) and 100 members each,
//! drawn from 100k users so that every user is in ten of the 10k policies; populated
//! in-process (the ten roles and ten tenants first: the policies reference them). For each,
//! the start-up and memory as above, then over native gRPC, one request at a time, a
//! `GetPolicy` of a random policy and an `AddPolicyMembers` of one new member to a random
//! policy, each add undone (`RemovePolicyMembers`, not timed) so that every add finds a
//! policy of 100 members. And the bytes the `iam.policy.members.added` event stores: the
//! last one those adds wrote, and, through the kind, one member added to a policy of 10,
//! 100 and 1,000 members.
//!
//! Run: `cargo bench --bench state` (see BENCHMARKS.md). `IAMD_BENCH_SIZES=1000,10000`
//! picks the sizes; `IAMD_BENCH_POLICIES=100,10000` the IAM stores' (the ratios compare the
//! last with the first; an empty list, here or in the sizes, skips that part);
//! `IAMD_BENCH_READS` the requests per read or write measurement (default 3000).

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

use iam_pb::policy_service_client::PolicyServiceClient;
use iamd::config::{Config, Secret};
use iamd::kinds::domain_policy::{DomainPolicy, DomainPolicyEvent, DomainSettings};
use iamd::kinds::iam_policy::{Effect, IamPolicy, IamPolicyEvent, IamPolicyState, Origin, Statement};
use iamd::kinds::iam_role::{IamRole, IamRoleEvent, IamRoleState};
use iamd::kinds::organization::{Organization, OrganizationEvent};
use iamd::kinds::tenant::{Tenant, TenantEvent, TenantState};
use iamd::model::draft::Draft;
use iamd::model::kind::{Kind, OnDelete, Term};
use iamd::model::registry::Registry;
use iamd::model::replica::Replica;
use iamd::pb::iamd::accounts::v1 as pb;
use iamd::pb::iamd::iam::v2 as iam_pb;
use iamd::store::LogCursor;
use pb::organization_service_client::OrganizationServiceClient;

mod common;

const CHILDREN: usize = 100_000;
/// Organizations (and as many items) of the stores that compare history lengths.
const HISTORY_ORGS: usize = 10_000;
const FIRST_ORG_CHILDREN: usize = 1_000;
const BATCH: usize = 2_000;
/// Statements per policy, each naming its own role and tenant: as many roles and tenants.
const STATEMENTS: usize = 10;
const POLICY_MEMBERS: usize = 100;
/// The users policy members are drawn from.
const USERS: usize = 100_000;
const SERVE_DIR: &str = "IAMD_BENCH_SERVE_DIR";
const SERVE_URL: &str = "IAMD_BENCH_SERVE_DATABASE_URL";

/// Where a store is: a data directory, and the PostgreSQL schema when it is not SQLite.
struct Place {
    dir: PathBuf,
    url: Option<String>,
}

impl Place {
    fn config(&self) -> Config {
        Config { database_url: self.url.as_deref().map(Secret::new), ..common::config(&self.dir) }
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

    fn on_delete(_: &ItemState, _: &'static str) -> OnDelete {
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
async fn time<F, Fut>(reads: usize, call: F) -> (u64, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    time_undone(reads, call, |()| std::future::ready(())).await
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
    let Served { started, channel, ready_ms, rss, hwm } = serve_for_timing(place).await;
    let mut client = OrganizationServiceClient::with_interceptor(channel, common::credential as common::Credential);
    let mut random = Lcg(42);
    let get = time(reads, || {
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
    let list = time(reads, || {
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
    let (replica, load_ms) = load(place).await;
    let objects = replica.read().unwrap().len();
    let events = replica.store().read_log(None, LogCursor::default(), u32::MAX).await.unwrap().len() as u64;
    let first = org_id(0);
    let middle = {
        let objects = replica.read().unwrap();
        let page = objects.page::<Item>(&first, None, false, FIRST_ORG_CHILDREN / 2);
        page.last().map(|item| (item.meta.created_at, item.id.to_string())).unwrap()
    };
    let children = time(reads * 10, || {
        let objects = replica.read().unwrap();
        let page = objects.page::<Item>(&first, Some((middle.0, &middle.1)), false, 100);
        assert_eq!(page.len(), 100);
        std::future::ready(())
    })
    .await;
    replica.close().await.unwrap();
    Row { orgs, objects, events, ready_ms, load_ms, rss, hwm, get, list, children }
}

/// A server started for timing requests, after its start-up was timed.
struct Served {
    started: Started,
    channel: tonic::transport::Channel,
    ready_ms: f64,
    rss: f64,
    hwm: f64,
}

async fn serve_for_timing(place: &Place) -> Served {
    let ready_ms = started_ready(place).as_secs_f64() * 1000.0;
    let started = start(place);
    let (rss, hwm) = memory(started.child.id());
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", started.addr)).unwrap().connect().await.unwrap();
    Served { started, channel, ready_ms, rss, hwm }
}

/// The store opened in-process, and how long its load took in ms.
async fn load(place: &Place) -> (Arc<Replica>, f64) {
    let began = Instant::now();
    let replica = replica(place).await;
    (replica, began.elapsed().as_secs_f64() * 1000.0)
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

fn policy_id(n: usize) -> String {
    format!("policy-{n:05}")
}

/// Policy `n`: statement j grants role `r{j}` on tenant `t{j}`; its members are the 100
/// users from `100 n` on (modulo `USERS`), so that of 10k policies every user is in ten.
/// It belongs to one tenant, so that the tenant index is spread too.
fn policy_state(n: usize, members: usize) -> IamPolicyState {
    let statements = (0..STATEMENTS)
        .map(|j| Statement {
            effect: Effect::Allow,
            actions: Vec::new(),
            role: format!("r{j}"),
            resources: vec!["*".to_owned()],
            tenants: vec![format!("t{j}")],
            conditions_all: Vec::new(),
        })
        .collect();
    IamPolicyState {
        name: format!("Policy {n}"),
        origin: Origin::Custom,
        members: (0..members).map(|m| format!("user:local:u{}", (n * POLICY_MEMBERS + m) % USERS)).collect(),
        statements,
        tenants: vec![format!("t{}", n % STATEMENTS)],
    }
}

/// The instance's default domain policy, the roles and tenants the statements name, then
/// `policies` policies.
async fn populate_iam(place: &Place, policies: usize) {
    let replica = replica(place).await;
    let instance = replica.store().instance().await.unwrap().id;
    const VERBS: [&str; STATEMENTS] =
        ["get", "list", "create", "update", "delete", "read", "write", "add", "remove", "move"];
    // `r{j}` and `t{j}`: no id the server seeds at start (`owner`, `viewer`, …).
    write(&replica, |d| {
        let seeded = DomainPolicyEvent::InstanceAdded(DomainSettings::from_org_iam(true));
        d.create::<DomainPolicy>(&instance, &instance, seeded).unwrap();
        for (j, verb) in VERBS.iter().enumerate() {
            let tenant = TenantState { name: format!("Tenant {j}"), origin: Origin::Custom };
            d.create::<Tenant>(&format!("t{j}"), &instance, TenantEvent::Added(tenant)).unwrap();
            let role = IamRoleState {
                name: format!("Role {j}"),
                origin: Origin::Custom,
                actions: vec![format!("bench:things:{verb}")],
                tenants: Vec::new(),
            };
            d.create::<IamRole>(&format!("r{j}"), &instance, IamRoleEvent::Added(role)).unwrap();
        }
    })
    .await;
    for start in (0..policies).step_by(BATCH) {
        write(&replica, |d| {
            for n in start..(start + BATCH).min(policies) {
                let event = IamPolicyEvent::Added(policy_state(n, POLICY_MEMBERS));
                d.create::<IamPolicy>(&policy_id(n), &instance, event).unwrap();
            }
        })
        .await;
    }
    replica.close().await.unwrap();
}

/// p50 and p99 in µs of `writes` calls of `call`, after 200 not timed, each followed (not
/// timed) by `undo` of what it answered, so that every call finds the store as populated.
async fn time_undone<T, F, Fut, U, UFut>(writes: usize, mut call: F, mut undo: U) -> (u64, u64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    U: FnMut(T) -> UFut,
    UFut: std::future::Future<Output = ()>,
{
    for _ in 0..200 {
        let done = call().await;
        undo(done).await;
    }
    let mut h = histogram();
    for _ in 0..writes {
        let began = Instant::now();
        let done = call().await;
        h.record(began.elapsed().as_micros().max(1) as u64).unwrap();
        undo(done).await;
    }
    (h.value_at_quantile(0.5), h.value_at_quantile(0.99))
}

struct IamRow {
    policies: usize,
    objects: usize,
    events: u64,
    ready_ms: f64,
    load_ms: f64,
    rss: f64,
    hwm: f64,
    get: (u64, u64),
    add: (u64, u64),
    /// Type and payload of the last member-add event AddPolicyMembers wrote.
    add_bytes: usize,
}

fn event_type(event: &IamPolicyEvent) -> String {
    serde_json::to_value(event).unwrap()["type"].as_str().unwrap().to_owned()
}

async fn measure_iam(place: &Place, policies: usize, requests: usize) -> IamRow {
    let Served { started, channel, ready_ms, rss, hwm } = serve_for_timing(place).await;
    let client = PolicyServiceClient::with_interceptor(channel, common::credential as common::Credential);
    let mut random = Lcg(42);
    let get = time(requests, || {
        let id = policy_id(random.below(policies));
        let mut client = client.clone();
        async move {
            let reply = client.get_policy(iam_pb::GetPolicyRequest { id: id.clone() }).await.unwrap();
            let policy = reply.into_inner().policy.unwrap();
            assert_eq!(
                (policy.id.as_str(), policy.statements.len(), policy.members.len()),
                (id.as_str(), STATEMENTS, POLICY_MEMBERS)
            );
        }
    })
    .await;
    // A member no policy holds yet each time, so that every add writes.
    let mut fresh = 0usize;
    let add = time_undone(
        requests,
        || {
            fresh += 1;
            let (id, member) = (policy_id(random.below(policies)), format!("user:local:newcomer-{fresh}"));
            let mut client = client.clone();
            async move {
                let request = iam_pb::AddPolicyMembersRequest { id: id.clone(), members: vec![member.clone()] };
                let members = client.add_policy_members(request).await.unwrap().into_inner().members;
                assert_eq!((members.len(), members.last()), (POLICY_MEMBERS + 1, Some(&member)));
                (id, member)
            }
        },
        |(id, member)| {
            let mut client = client.clone();
            async move {
                let request = iam_pb::RemovePolicyMembersRequest { id, members: vec![member] };
                let members = client.remove_policy_members(request).await.unwrap().into_inner().members;
                assert_eq!(members.len(), POLICY_MEMBERS);
            }
        },
    )
    .await;
    stop(started);

    let (replica, load_ms) = load(place).await;
    let objects = replica.read().unwrap().len();
    let log = replica.store().read_log(None, LogCursor::default(), u32::MAX).await.unwrap();
    let added = event_type(&IamPolicyEvent::MembersAdded { members: Vec::new() });
    let last_add = log.iter().rev().find(|c| c.event.event_type == added).unwrap();
    let add_bytes = last_add.event.event_type.len() + last_add.event.payload.to_string().len();
    replica.close().await.unwrap();
    IamRow { policies, objects, events: log.len() as u64, ready_ms, load_ms, rss, hwm, get, add, add_bytes }
}

/// Bytes the event of adding one member to a policy stores, for 10, 100 and 1,000 members
/// before: the add names the new member only, whatever the list holds.
async fn policy_member_add_bytes(place: &Place) -> Vec<(usize, usize)> {
    let replica = replica(place).await;
    let instance = replica.store().instance().await.unwrap().id;
    let mut out = Vec::new();
    for members in [10usize, 100, 1_000] {
        let id = format!("members-{members}");
        let created = IamPolicyEvent::Added(policy_state(0, members));
        write(&replica, |d| d.create::<IamPolicy>(&id, &instance, created).unwrap()).await;
        let policy = replica.read().unwrap().get::<IamPolicy>(&id).unwrap();
        let one = IamPolicyEvent::MembersAdded { members: vec!["user:local:newcomer".to_owned()] };
        let written = write(&replica, |d| d.change(&policy, one).unwrap()).await;
        let log = replica.store().read_log(Some((IamPolicy::NAME, &id)), LogCursor::default(), 10).await.unwrap();
        let event = log.iter().find(|c| Some(c.event.position) == written.position).unwrap();
        let bytes = event.event.event_type.len() + event.event.payload.to_string().len();
        let now = replica.read().unwrap().get::<IamPolicy>(&id).unwrap();
        assert_eq!(
            (now.members.len(), now.members.last().map(String::as_str)),
            (members + 1, Some("user:local:newcomer"))
        );
        out.push((members, bytes));
    }
    replica.close().await.unwrap();
    out
}

fn main() {
    if let Ok(dir) = std::env::var(SERVE_DIR) {
        return serve(Place { dir: dir.into(), url: std::env::var(SERVE_URL).ok() });
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let list = |name: &str, default: &str| -> Vec<usize> {
        let list = std::env::var(name).unwrap_or_else(|_| default.into());
        list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
    };
    let (policy_sizes, sizes) =
        (list("IAMD_BENCH_POLICIES", "100,10000"), list("IAMD_BENCH_SIZES", "1000,10000,100000"));
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
        let iam_places: Vec<_> =
            policy_sizes.iter().map(|n| Place { dir: root.path().join(format!("policies-{n}")), url: None }).collect();
        for (&policies, place) in policy_sizes.iter().zip(&iam_places) {
            let began = Instant::now();
            populate_iam(place, policies).await;
            eprintln!("populated {policies} policies in {:.1?}", began.elapsed());
        }
        let mut iam_rows = Vec::new();
        for (&policies, place) in policy_sizes.iter().zip(&iam_places) {
            iam_rows.push(measure_iam(place, policies, reads).await);
        }
        let policy_bytes = match iam_places.first() {
            Some(place) => policy_member_add_bytes(place).await,
            None => Vec::new(),
        };
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
        if !iam_rows.is_empty() {
            println!();
            println!("| policies | objects | events | start-up to ready (median of 3) | load in-process | RSS after start | peak RSS | GetPolicy p50 / p99 µs | AddPolicyMembers p50 / p99 µs | its event, bytes |");
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
        for r in &iam_rows {
            println!(
                "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} MiB | {:.0} MiB | {} / {} | {} / {} | {} |",
                r.policies, r.objects, r.events, r.ready_ms, r.load_ms, r.rss, r.hwm, r.get.0, r.get.1, r.add.0, r.add.1,
                r.add_bytes
            );
        }
        if let (Some(first), Some(last)) = (iam_rows.first(), iam_rows.last()) {
            println!();
            let ratio = |large: u64, small: u64| large as f64 / small as f64;
            let (small, large) = (first.policies, last.policies);
            println!("GetPolicy p50 at {large} policies / at {small}: {:.2}", ratio(last.get.0, first.get.0));
            println!("AddPolicyMembers p50 at {large} policies / at {small}: {:.2}", ratio(last.add.0, first.add.0));
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
        if !policy_bytes.is_empty() {
            println!();
            println!("| policy members before | bytes of the iam.policy.members.added event (type + payload) |");
            println!("|---:|---:|");
        }
        for (members, bytes) in policy_bytes {
            println!("| {members} | {bytes} |");
        }
    });
}
