//! iamd guarding itself: every method of every surface, over gRPC, gRPC-web and JSON, with
//! no credential, a bad one, an expired token, a valid token that holds nothing, and the
//! bootstrap administrator. The methods come from the server's own method table, so a method
//! added without a case here fails the test, and each call is built once (as the JSON request
//! the route reads) and sent on each protocol from it.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use iamd::methods::MethodTable;
use iamd::pb::google::api::http_rule::Pattern;
use iamd::transcode::routes::{BodyRule, Route, RouteTable};
use serde_json::{Map, Value, json};
use tonic::Code;

use crate::support::{TOKEN, TestServer, gateway_status, grpc_web_code};

/// The credentials of the matrix, in the order the test tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    Bad,
    Expired,
    Unprivileged,
    Admin,
}

/// What the matrix's calls refer to, made by the administrator first.
struct World {
    org: String,
    org_policy: String,
    org_role: String,
    assignment: String,
    plain: String,
    expired: String,
}

async fn create(server: &TestServer, path: &str, body: Value) -> Value {
    let reply = server.json(Method::POST, path, Some(body)).await;
    assert!(reply.status.is_success(), "setup POST {path}: {}", reply.body);
    reply.body
}

async fn world(server: &TestServer) -> World {
    let org = server.create_org("acme").await;
    create(server, "/iam/tenants", json!({"id": "t1", "name": "T1", "skipPolicies": true})).await;
    create(server, "/iam/roles", json!({"id": "myrole", "name": "Mine", "actions": ["iam:policies:get"]})).await;
    create(
        server,
        "/iam/policies",
        json!({"id": "p1", "name": "P1", "members": [], "statements": [{"role": "myrole", "tenants": ["*"]}]}),
    )
    .await;
    create(server, "/iam/users", json!({"id": "bob", "name": "Bob"})).await;
    create(server, "/iam/teams", json!({"id": "ops", "name": "Ops"})).await;
    let plain = create(server, "/iam/tokens", json!({"id": "plain", "name": "Plain"})).await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let expired = create(
        server,
        "/iam/tokens",
        json!({"id": "soon", "name": "Soon", "expiresAt": soon.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
    )
    .await;
    let policy = create(
        server,
        &format!("/organizations/{org}/iam-policies"),
        json!({"name": "Readers", "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]}),
    )
    .await;
    let role = create(
        server,
        &format!("/organizations/{org}/iam-roles"),
        json!({"name": "Readers", "policyIds": [policy["id"]]}),
    )
    .await;
    let assignment = create(
        server,
        &format!("/organizations/{org}/iam-assignments"),
        json!({"principal": "user:local:bob", "roleIds": [role["id"]]}),
    )
    .await;
    let text = |v: &Value| v.as_str().unwrap().to_owned();
    World {
        org,
        org_policy: text(&policy["id"]),
        org_role: text(&role["id"]),
        assignment: text(&assignment["id"]),
        plain: text(&plain["token"]["value"]),
        expired: text(&expired["token"]["value"]),
    }
}

impl World {
    fn authorization(&self, who: Who) -> String {
        match who {
            Who::Nobody => String::new(),
            Who::Bad => "Bearer this-is-not-a-token".into(),
            Who::Expired => format!("Bearer {}", self.expired),
            Who::Unprivileged => format!("AccessKey {}", self.plain),
            Who::Admin => format!("Bearer {TOKEN}"),
        }
    }

    /// The request of one method, as JSON: its path variables and a body that would
    /// succeed for the administrator.
    fn request(&self, method: &str) -> Value {
        let service = method.split('/').next().unwrap_or_default();
        let id = match service {
            "iamd.iam.v2.PolicyService" => "p1",
            "iamd.iam.v2.RoleService" => "myrole",
            "iamd.iam.v2.TenantService" => "t1",
            "iamd.iam.v2.UserService" => "bob",
            "iamd.iam.v2.TeamService" => "ops",
            "iamd.iam.v2.TokenService" => "plain",
            _ => "",
        };
        let mut request = json!({
            "orgId": self.org, "organizationId": self.org, "id": id,
            "policyId": self.org_policy, "roleId": self.org_role, "assignmentId": self.assignment,
        });
        let body = match method.rsplit('/').next().unwrap_or_default() {
            "CreatePolicy" if service.ends_with("iam.v2.PolicyService") => {
                json!({"id": "p2", "name": "P2", "statements": [{"role": "myrole", "tenants": ["*"]}]})
            }
            "UpdatePolicy" if service.ends_with("iam.v2.PolicyService") => {
                json!({"name": "P1", "statements": [{"role": "myrole", "tenants": ["*"]}]})
            }
            "CreatePolicy" | "UpdatePolicy" => {
                json!({"name": "More", "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/x"]}]})
            }
            "CreateRole" if service.ends_with("iam.v2.RoleService") => {
                json!({"id": "r2", "name": "R2", "actions": ["iam:roles:get"]})
            }
            "UpdateRole" if service.ends_with("iam.v2.RoleService") => {
                json!({"name": "R", "actions": ["iam:roles:get"]})
            }
            "CreateRole" | "UpdateRole" => json!({"name": "More", "policyIds": [self.org_policy]}),
            "CreateAssignment" => json!({"principal": "team:local:ops", "policyIds": [self.org_policy]}),
            "CreateTenant" => json!({"id": "t2", "name": "T2"}),
            "UpdateTenant" => json!({"name": "T"}),
            "CreateUser" => json!({"id": "carol", "name": "Carol"}),
            "UpdateUser" => json!({"name": "Robert"}),
            "CreateTeam" => json!({"id": "devs", "name": "Devs"}),
            "UpdateTeam" => json!({"name": "Operations"}),
            "AddTeamUsers" | "RemoveTeamUsers" => json!({"userIds": ["bob"]}),
            "CreateToken" => json!({"id": "t9", "name": "Nine"}),
            "UpdateToken" => json!({"name": "Plain"}),
            "ReplacePolicyMembers" | "AddPolicyMembers" | "RemovePolicyMembers" => {
                json!({"members": ["user:local:bob"]})
            }
            "Introspect" => json!({"paths": ["/iam/users"]}),
            "CreateOrganization" => json!({"name": "globex"}),
            "UpdateOrganization" => json!({"name": "acme2"}),
            "Check" => json!({"subject": "user:local:bob", "action": "iam:users:get", "resource": "iam:users:bob"}),
            "BatchCheck" => {
                json!({"checks": [{"subject": "user:local:bob", "action": "iam:users:get", "resource": "iam:users:bob"}]})
            }
            "Explain" => {
                json!({"check": {"subject": "user:local:bob", "action": "iam:users:get", "resource": "iam:users:bob"}})
            }
            "UpdateOrgIAMPolicy" | "AddCustomOrgIAMPolicy" | "UpdateCustomOrgIAMPolicy" => {
                json!({"userLoginMustBeDomain": true})
            }
            "UpdateDomainPolicy" | "AddCustomDomainPolicy" | "UpdateCustomDomainPolicy" => json!({
                "userLoginMustBeDomain": true, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true
            }),
            _ => json!({}),
        };
        for (key, value) in body.as_object().unwrap() {
            request[key] = value.clone();
        }
        request
    }
}

/// The JSON request of `route` split into its path, with the variables bound, and its body:
/// what the route does not bind goes into the body, or (without a body) is left out.
fn json_call(route: &Route, request: &Value) -> (String, Option<Value>) {
    let (_, template) = first_binding(route);
    // The route's variables, in template order, by their JSON names.
    let bound: Vec<&str> = route.path_fields.iter().map(|fields| fields.last().unwrap().json_name()).collect();
    let mut path = String::new();
    let mut rest = template.as_str();
    for name in &bound {
        let open = rest.find('{').unwrap();
        path.push_str(&rest[..open]);
        path.push_str(request[*name].as_str().unwrap());
        rest = &rest[rest.find('}').unwrap() + 1..];
    }
    path.push_str(rest);
    let fields: Map<String, Value> = route
        .input()
        .fields()
        .filter(|f| !bound.contains(&f.json_name()))
        .filter_map(|f| request.get(f.json_name()).map(|v| (f.json_name().to_owned(), v.clone())))
        .collect();
    let body = match &route.body {
        BodyRule::None => None,
        BodyRule::Whole => Some(Value::Object(fields)),
        BodyRule::Field(field) => Some(fields.get(field.json_name()).cloned().unwrap_or(json!({}))),
    };
    (path, body)
}

/// The HTTP method and path template of the method's first `google.api.http` binding.
fn first_binding(route: &Route) -> (Method, String) {
    match route.api.http[0].pattern.clone() {
        Some(Pattern::Get(t)) => (Method::GET, t),
        Some(Pattern::Put(t)) => (Method::PUT, t),
        Some(Pattern::Post(t)) => (Method::POST, t),
        Some(Pattern::Delete(t)) => (Method::DELETE, t),
        Some(Pattern::Patch(t)) => (Method::PATCH, t),
        other => panic!("{}: {other:?}", route.api.path),
    }
}

/// The message of `route`'s method built from the same JSON request, for gRPC.
fn grpc_frame(route: &Route, request: &Value) -> Bytes {
    let fields: Map<String, Value> = route
        .input()
        .fields()
        .filter_map(|f| request.get(f.json_name()).map(|v| (f.json_name().to_owned(), v.clone())))
        .collect();
    (route.codec.request)(Value::Object(fields)).unwrap()
}

/// One call on one protocol with one credential (empty: none): its gRPC code.
async fn call(server: &TestServer, route: &Route, request: &Value, protocol: &str, authorization: &str) -> Code {
    let path = &*route.api.path;
    let credential = [("authorization", authorization.to_owned())];
    match protocol {
        "grpc" => server.grpc_body_with(path, grpc_frame(route, request), &credential).await.code(),
        "grpc-web" => {
            let (status, headers, body) =
                server.grpc_web_send(path, grpc_frame(route, request), false, &credential).await;
            grpc_web_code(status, &headers, body)
        }
        _ => {
            let (path, body) = json_call(route, request);
            let reply = server.json_with(route.method.clone(), &path, body, &credential).await;
            if reply.status.is_success() {
                return Code::Ok;
            }
            let code = Code::from_i32(reply.body["code"].as_i64().unwrap() as i32);
            assert_eq!(reply.status, gateway_status(code), "{} {path}: {}", route.method, reply.body);
            if code == Code::Unauthenticated {
                assert!(reply.headers.contains_key("www-authenticate"), "a 401 names its scheme");
            }
            code
        }
    }
}

/// The log position of the last event.
async fn last_position(server: &TestServer) -> u64 {
    let mut after = 0;
    loop {
        let page = server.json(Method::GET, &format!("/v1/events?afterPosition={after}&limit=100"), None).await.body;
        match page["events"].as_array().and_then(|events| events.last()) {
            Some(last) => after = last["position"].as_str().unwrap().parse().unwrap(),
            None => return after,
        }
    }
}

/// Methods every authenticated caller may call (the system's statements).
const OPEN_TO_ALL: [&str; 2] =
    ["/iamd.iam.v2.IntrospectionService/Introspect", "/iamd.iam.v2.PolicyService/GetPolicyVersion"];

#[tokio::test]
async fn every_method_on_every_protocol_refuses_whom_it_must_and_a_refused_write_changes_nothing() {
    let server = TestServer::start().await;
    let world = world(&server).await;
    let methods = MethodTable::served().unwrap();
    let table = RouteTable::from_methods(&methods).unwrap();
    let guarded: Vec<&str> = methods.iter().filter(|m| m.permission().is_some()).map(|m| &*m.path).collect();
    // One route per guarded method: its first binding.
    let mut routes: BTreeMap<&str, &Route> = BTreeMap::new();
    for route in table.routes() {
        if route.method == first_binding(route).0 && guarded.contains(&&*route.api.path) {
            routes.entry(&route.api.path).or_insert(route);
        }
    }
    assert_eq!(routes.keys().copied().collect::<Vec<_>>().len(), guarded.len(), "every guarded method has a route");
    // Let the short-lived token expire.
    tokio::time::sleep(Duration::from_millis(1600)).await;

    let last = last_position(&server).await;
    for (path, route) in &routes {
        let request = world.request(path.trim_start_matches('/'));
        for protocol in ["grpc", "grpc-web", "json"] {
            for who in [Who::Nobody, Who::Bad, Who::Expired, Who::Unprivileged] {
                let code = call(&server, route, &request, protocol, &world.authorization(who)).await;
                let expected = match who {
                    Who::Unprivileged if OPEN_TO_ALL.contains(path) => Code::Ok,
                    Who::Unprivileged => Code::PermissionDenied,
                    _ => Code::Unauthenticated,
                };
                assert_eq!(code, expected, "{who:?} calling {path} over {protocol}");
            }
        }
    }
    let written = server.json(Method::GET, &format!("/v1/events?afterPosition={last}"), None).await.body;
    assert_eq!(written["events"], json!([]), "a refused call wrote something");

    // The administrator gets past the door everywhere (what then happens is the method's).
    // Reads first, which find what the world made; then writes, each protocol in turn.
    let mut ordered: Vec<(&&str, &&Route)> = routes.iter().collect();
    ordered.sort_by_key(|(_, route)| route.method != Method::GET);
    for (path, route) in ordered {
        let request = world.request(path.trim_start_matches('/'));
        for protocol in ["grpc", "grpc-web", "json"] {
            let code = call(&server, route, &request, protocol, &world.authorization(Who::Admin)).await;
            assert!(
                !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                "the administrator calling {path} over {protocol}: {code:?}"
            );
            if route.method == Method::GET {
                assert_eq!(code, Code::Ok, "the administrator reading {path} over {protocol}");
            }
        }
    }
}

#[tokio::test]
async fn what_stays_open_answers_without_a_credential_and_no_answer_allows_credentials() {
    let server = TestServer::start().await;
    let bare = |method: Method, path: &str| Request::builder().method(method).uri(server.url(path));
    // And the AuthZEN metadata, which a gateway reads before it holds a token: an open method.
    for path in ["/healthz", "/readyz", "/.well-known/authzen-configuration"] {
        let (status, headers, _) = server.raw(bare(Method::GET, path).body(Full::new(Bytes::new())).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!headers.contains_key("access-control-allow-credentials"));
    }
    let open: Vec<_> = MethodTable::served()
        .unwrap()
        .iter()
        .filter(|m| m.path.starts_with("/iamd.") && m.permission().is_none())
        .map(|m| m.path.to_string())
        .collect();
    assert_eq!(open, ["/iamd.authzen.v1.MetadataService/GetConfiguration"], "the open methods of iamd's own");
    // gRPC health and reflection, through tonic's clients, with no credential.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    assert!(health.check(request).await.is_ok());
    // A browser's preflight, and a browser's refused call: readable, never with credentials.
    let preflight = bare(Method::OPTIONS, "/iam/users")
        .header("origin", "https://console.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = server.raw(preflight).await;
    assert!(status.is_success(), "{status}");
    assert!(!headers.contains_key("access-control-allow-credentials"));
    let call =
        bare(Method::GET, "/iam/users").header("origin", "https://console.example").body(Full::new(Bytes::new()));
    let (status, headers, body) = server.raw(call.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(headers["access-control-expose-headers"].to_str().unwrap().contains("www-authenticate"));
    assert!(!headers.contains_key("access-control-allow-credentials"));
}
