//! The audit trail over every protocol: the events of the instance or of one object, in log
//! order, with actor, time, type and payload, a page at a time.

use http::Method;
use iamd::pb::iamd::history::v1 as history;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{Step, parity};
use crate::support::{Rest, TestServer};

const RENAME: Step = (Method::PATCH, "/organizations/{org}", Some(r#"{"name":"acme-2"}"#));

fn list(query: &'static str) -> impl Fn(&str) -> Rest {
    move |org: &str| {
        Rest::new(
            "/iamd.history.v1.HistoryService/ListEvents",
            Method::GET,
            format!("/v1/events{}", query.replace("{org}", org)),
        )
    }
}

#[tokio::test]
async fn the_whole_log_in_order_on_every_protocol() {
    let answer = parity::<_, history::ListEventsResponse>(
        &[RENAME],
        list(""),
        |_| history::ListEventsRequest::default(),
        Code::Ok,
    )
    .await;
    assert_eq!(
        answer,
        json!({"events": [
            {"position": "1", "objectType": "domain_policy", "objectId": "<uuid>", "sequence": "1",
             "eventType": "instance.policy.domain.added",
             "payload": {"userLoginMustBeDomain": true, "validateOrgDomains": true,
                         "smtpSenderAddressMatchesInstanceDomain": true},
             "actor": "system", "createdAt": "<time>", "resourceOwner": "<uuid>"},
            {"position": "2", "objectType": "organization", "objectId": "<uuid>", "sequence": "1",
             "eventType": "org.added", "payload": {"name": "acme", "domain": ""},
             "actor": "user:local:admin", "createdAt": "<time>", "resourceOwner": "<uuid>"},
            {"position": "3", "objectType": "organization", "objectId": "<uuid>", "sequence": "2",
             "eventType": "org.changed", "payload": {"name": "acme-2"},
             "actor": "user:local:admin", "createdAt": "<time>", "resourceOwner": "<uuid>"},
        ]})
    );
}

#[tokio::test]
async fn one_object_after_a_position() {
    let answer = parity::<_, history::ListEventsResponse>(
        &[RENAME],
        list("?objectType=organization&objectId={org}&afterPosition=2"),
        |org| history::ListEventsRequest {
            object_type: "organization".into(),
            object_id: org.into(),
            after_position: 2,
            ..Default::default()
        },
        Code::Ok,
    )
    .await;
    let events = answer["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{answer}");
    assert_eq!(events[0]["eventType"], "org.changed");
}

#[tokio::test]
async fn bad_queries_are_invalid_on_every_protocol() {
    let cases: [(&'static str, history::ListEventsRequest); 4] = [
        ("?objectId=x", history::ListEventsRequest { object_id: "x".into(), ..Default::default() }),
        ("?limit=0", history::ListEventsRequest { limit: Some(0), ..Default::default() }),
        ("?afterPosition=999", history::ListEventsRequest { after_position: 999, ..Default::default() }),
        ("?pageToken=forged", history::ListEventsRequest { page_token: "forged".into(), ..Default::default() }),
    ];
    for (query, request) in cases {
        parity::<_, history::ListEventsResponse>(&[], list(query), move |_| request.clone(), Code::InvalidArgument)
            .await;
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
    assert_eq!(positions, (1..=8).collect::<Vec<u64>>());
}
