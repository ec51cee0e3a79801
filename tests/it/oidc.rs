//! OIDC sign-in at the front door, on every protocol: a JWT from the configured issuer for
//! the configured audience, signed by a key of its JWKS (a file here, made for these tests),
//! acts as `user:oidc:<sub>` with its groups as `team:oidc:<group>` teams; anything else is
//! UNAUTHENTICATED.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Outcome, PROTOCOLS, Rest, TestServer, rpc};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc");
const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "iamd";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn claims(sub: &str, groups: Value, expires_in: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "groups": groups, "iat": now, "exp": now + expires_in})
}

fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&fixture("rsa.pem")),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&fixture("ec.pem")),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&fixture("ed25519.pem")),
        Algorithm::HS256 => EncodingKey::from_secret(&fixture("rsa.pub.pem")),
        other => panic!("{other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.unwrap()).unwrap()
}

/// A token that says `alg: none` and carries no signature.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

async fn server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    TestServer::start_in(dir, |c| iamd::config::Config {
        oidc_issuer: Some(ISSUER.into()),
        oidc_audience: Some(AUDIENCE.into()),
        oidc_jwks: Some(format!("{FIXTURES}/jwks.json")),
        ..c
    })
    .await
}

/// Listing users, as the holder of `jwt`, on `protocol`.
async fn list_users(server: &TestServer, protocol: crate::support::Protocol, jwt: &str) -> Outcome {
    let rest = Rest::new(rpc::LIST_USERS, Method::GET, "/iam/users").header("authorization", format!("Bearer {jwt}"));
    server.call(protocol, &rest).await
}

#[tokio::test]
async fn a_jwt_of_the_issuer_acts_as_its_subject_with_its_groups_as_teams() {
    let server = server().await;
    // The team `ops` of the identity provider may list users; nobody else it signs in may.
    let statements =
        json!([{"effect": "ALLOW", "actions": ["iam:users:list"], "resources": ["iam:users"], "tenants": ["*"]}]);
    let policy = json!({"id": "ops", "name": "Ops", "members": ["team:oidc:ops%3Aleads"], "statements": statements});
    assert!(server.json(Method::POST, "/iam/policies", Some(policy)).await.status.is_success());
    for alg in [(Algorithm::RS256, "rsa-1"), (Algorithm::ES256, "ec-1"), (Algorithm::EdDSA, "ed-1")] {
        let lead = sign(alg.0, alg.1, &claims("ann", json!(["ops:leads", "dev"]), 300));
        let other = sign(alg.0, alg.1, &claims("bo", json!(["dev"]), 300));
        for protocol in PROTOCOLS {
            let answer = list_users(&server, protocol, &lead).await;
            assert_eq!(answer.code(), Code::Ok, "{alg:?} {protocol:?}: {answer:?}");
            let refused = list_users(&server, protocol, &other).await;
            let Outcome::Err { code, message, .. } = refused else { panic!("{protocol:?}: {refused:?}") };
            assert_eq!(code, Code::PermissionDenied, "{message}");
            assert!(message.contains("`user:oidc:bo` may not `iam:users:list`"), "{message}");
        }
    }
    // Its subject is an actor of the history like any other.
    let ann = sign(Algorithm::RS256, "rsa-1", &claims("ann", json!(["ops:leads"]), 300));
    let grant = json!({"id": "ann", "name": "Ann", "members": ["user:oidc:ann"],
        "statements": [{"effect": "ALLOW", "actions": ["iam:teams:create"], "resources": ["iam:teams"], "tenants": ["*"]}]});
    assert!(server.json(Method::POST, "/iam/policies", Some(grant)).await.status.is_success());
    let created = server
        .json_with(
            Method::POST,
            "/iam/teams",
            Some(json!({"id": "made", "name": "Made"})),
            &[("authorization", format!("Bearer {ann}"))],
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let events = server.json(Method::GET, "/v1/events?objectType=team&objectId=made", None).await.body;
    assert_eq!(events["events"][0]["actor"], "user:oidc:ann", "{events}");
}

#[tokio::test]
async fn a_jwt_that_is_not_exactly_right_is_unauthenticated_on_every_protocol() {
    let server = server().await;
    let good = claims("ann", json!([]), 300);
    let with = |field: &str, value: Value| {
        let mut claims = good.clone();
        claims[field] = value;
        claims
    };
    let cases = [
        ("expired beyond the leeway", sign(Algorithm::RS256, "rsa-1", &claims("ann", json!([]), -120)), "EXPIRED"),
        ("another audience", sign(Algorithm::RS256, "rsa-1", &with("aud", json!("other"))), "BAD_AUDIENCE"),
        ("another issuer", sign(Algorithm::RS256, "rsa-1", &with("iss", json!("https://evil.test"))), "BAD_ISSUER"),
        ("no expiry", sign(Algorithm::RS256, "rsa-1", &with("exp", Value::Null)), "MALFORMED"),
        ("alg none", unsigned(&good), "BAD_ALGORITHM"),
        ("HS256 keyed with the public key", sign(Algorithm::HS256, "rsa-1", &good), "BAD_ALGORITHM"),
        ("a key the JWKS lacks", sign(Algorithm::RS256, "rsa-9", &good), "UNKNOWN_KEY"),
        ("an RSA key named for an EC one", sign(Algorithm::RS256, "ec-1", &good), "BAD_ALGORITHM"),
    ];
    for (what, jwt, reason) in cases {
        for protocol in PROTOCOLS {
            let answer = list_users(&server, protocol, &jwt).await;
            let Outcome::Err { code, reason: got, message } = &answer else {
                panic!("{what} {protocol:?}: {answer:?}")
            };
            assert_eq!(*code, Code::Unauthenticated, "{what} {protocol:?}: {message}");
            assert_eq!(got.as_deref(), Some(reason), "{what} {protocol:?}: {message}");
            assert!(!message.contains(&jwt), "an error repeats the token");
        }
    }
    // Within the leeway, an expired token still works.
    let late = sign(Algorithm::RS256, "rsa-1", &claims("admin-like", json!([]), -30));
    let answer = list_users(&server, crate::support::Protocol::Json, &late).await;
    assert_eq!(answer.code(), Code::PermissionDenied, "{answer:?}");
    // API tokens keep working beside OIDC.
    assert_eq!(server.json(Method::GET, "/iam/users", None).await.status, http::StatusCode::OK);
}
