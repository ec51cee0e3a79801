//! The one integration-test binary (one link on 2 cores): a real server per test, real
//! clients per protocol.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]

mod support;

mod accounts;
mod accounts_parity;
mod authz;
mod authzen;
mod concurrency;
mod config;
mod durability;
mod front_door;
mod history;
mod iam;
mod iam_parity;
mod identity;
mod identity_parity;
mod limits;
mod observability;
mod oidc;
mod openapi;
mod outage;
mod overload;
mod parity;
mod protocol;
mod proxy;
mod replicas;
mod seeds;
mod shutdown;
mod simulate;
mod volume;
