//! The audit trail over every protocol: the events of the instance or of one object, in log
//! order, with actor, time, type and payload, a page at a time.

use http::Method;
use iamd::pb::iamd::history::v1 as history;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{Step, parity};
use crate::support::{Rest, TestServer, rpc};

const RENAME: Step = (Method::PATCH, "/organizations/{org}", Some(r#"{"name":"acme-2"}"#));

/// Events a new instance starts with: its default domain policy, then the four managed IAM
/// roles and the three managed policies, in one write, then the bootstrap's user, team,
/// token and its record, in another.
const SEEDED: u64 = 12;

fn events() -> Rest<history::ListEventsRequest, history::ListEventsResponse> {
    Rest::new(rpc::LIST_EVENTS, Method::GET, "/v1/events")
}

/// The event of a managed organization policy, written with its organization.
fn managed(position: u64, name: &str, description: &str, action: &str) -> Value {
    json!({"position": position.to_string(), "objectType": "org_policy", "objectId": "<uuid>", "sequence": "1",
        "eventType": "org.iam.policy.added",
        "payload": {"name": name, "description": description, "type": "managed",
            "definitions": [{"effect": "allow", "actions": [action], "resources": ["/**"], "conditionsAll": []}],
            "metadata": {"clouds": [], "apps": [], "groups": []}},
        "actor": "user:local:admin", "createdAt": "<time>", "resourceOwner": "<uuid>"})
}

#[tokio::test]
async fn the_whole_log_in_order_on_every_protocol() {
    let answer = parity(&[RENAME], |_| events().query("limit", json!(100)), Code::Ok).await;
    let (seeded, rest): (Vec<&Value>, Vec<&Value>) = answer["events"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|e| e["actor"] == "system" && e["objectType"] != "domain_policy");
    let seeded: Vec<(&str, &str, &str, &str)> = seeded
        .iter()
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap();
            (text("position"), text("objectId"), text("eventType"), text("actor"))
        })
        .collect();
    assert_eq!(
        seeded,
        [
            ("2", "owner", "iam.role.added", "system"),
            ("3", "editor", "iam.role.added", "system"),
            ("4", "viewer", "iam.role.added", "system"),
            ("5", "tenant-owner", "iam.role.added", "system"),
            ("6", "administrator-access", "iam.policy.added", "system"),
            ("7", "editor-access", "iam.policy.added", "system"),
            ("8", "viewer-access", "iam.policy.added", "system"),
            ("9", "admin", "iam.user.added", "system"),
            ("10", "admins", "iam.team.added", "system"),
            ("11", "bootstrap", "iam.token.added", "system"),
            ("12", "instance", "iam.bootstrap.done", "system"),
        ]
    );
    let token = answer["events"].as_array().unwrap().iter().find(|e| e["objectType"] == "token").unwrap();
    assert_eq!(
        token["payload"],
        json!({"name": "Bootstrap", "active": true, "tenants": [], "user": "admin"}),
        "the history shows no digest"
    );
    assert_eq!(
        json!({"events": rest}),
        json!({"events": [
            {"position": "1", "objectType": "domain_policy", "objectId": "<uuid>", "sequence": "1",
             "eventType": "instance.policy.domain.added",
             "payload": {"userLoginMustBeDomain": true, "validateOrgDomains": true,
                         "smtpSenderAddressMatchesInstanceDomain": true},
             "actor": "system", "createdAt": "<time>", "resourceOwner": "<uuid>"},
            {"position": "13", "objectType": "organization", "objectId": "<uuid>", "sequence": "1",
             "eventType": "org.added", "payload": {"name": "acme", "domain": ""},
             "actor": "user:local:admin", "createdAt": "<time>", "resourceOwner": "<uuid>"},
            managed(14, "Full access", "Every action on every resource of the organization.", "any"),
            managed(15, "Read-only access", "Viewing every resource of the organization.", "view"),
            {"position": "16", "objectType": "organization", "objectId": "<uuid>", "sequence": "2",
             "eventType": "org.changed", "payload": {"name": "acme-2"},
             "actor": "user:local:admin", "createdAt": "<time>", "resourceOwner": "<uuid>"},
        ]})
    );
}

#[tokio::test]
async fn one_object_after_a_position() {
    let one = |org: &str| {
        events()
            .query("objectType", json!("organization"))
            .query("objectId", json!(org))
            .query("afterPosition", json!(SEEDED + 1))
    };
    let answer = parity(&[RENAME], one, Code::Ok).await;
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{answer}");
    assert_eq!(events[0]["eventType"], "org.changed");
}

#[tokio::test]
async fn bad_queries_are_invalid_on_every_protocol() {
    let cases =
        [("objectId", json!("x")), ("limit", json!(0)), ("afterPosition", json!(999)), ("pageToken", json!("forged"))];
    for (field, value) in cases {
        parity(&[], move |_| events().query(field, value.clone()), Code::InvalidArgument).await;
    }
}

#[tokio::test]
async fn pages_walk_the_log_without_gaps_or_repeats() {
    let server = TestServer::start().await;
    for i in 0..7 {
        server.create_org(&format!("org-{i}")).await;
    }
    let mut positions = Vec::new();
    let mut token = String::new();
    loop {
        let reply = server.json(Method::GET, &format!("/v1/events?limit=3&pageToken={token}"), None).await;
        assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.body);
        for event in reply.body["events"].as_array().unwrap() {
            positions.push(event["position"].as_str().unwrap().parse::<u64>().unwrap());
        }
        match reply.body.get("nextPageToken").and_then(Value::as_str) {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    // Each organization is written with its two managed policies.
    assert_eq!(positions, (1..=SEEDED + 7 * 3).collect::<Vec<u64>>());
}
