//! Who made a policy or role: an IAM v2 policy, role or tenant, or an organization policy.

use serde::{Deserialize, Serialize};

/// iamd, at first start (A.6: its statements and actions cannot change, and it cannot be
/// deleted), or a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Origin {
    Managed,
    Custom,
}
