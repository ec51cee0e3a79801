//! The built-in policies every organization has: full access and read-only access to its
//! own resources (`/**`), of type `managed`. Their ids are UUIDv5s of the organization's id
//! and the policy's name, so every replica, and rules written elsewhere, can name them
//! without reading the store. They are created with the organization, and at start for
//! organizations that predate them; they go with their organization.

use uuid::Uuid;

use super::super::{Actor, App, AppError};
use crate::kinds::org_policy::{
    Action, Definition, Effect, Metadata, OrgPolicy, OrgPolicyEvent, OrgPolicyState, PolicyType,
};
use crate::kinds::organization::Organization;
use crate::model::draft::Draft;

/// (name, description, the one action it allows on every resource).
const MANAGED: [(&str, &str, Action); 2] = [
    ("Full access", "Every action on every resource of the organization.", Action::Any),
    ("Read-only access", "Viewing every resource of the organization.", Action::View),
];

/// The id of an organization's managed policy named `name`.
pub fn managed_policy_id(org: &str, name: &str) -> String {
    // Organization ids are UUIDs the server made; any other id still gets a stable namespace.
    let namespace = Uuid::parse_str(org).unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_URL, org.as_bytes()));
    Uuid::new_v5(&namespace, name.as_bytes()).to_string()
}

/// The managed policies of organization `org`, with their ids.
pub fn managed_policies(org: &str) -> impl Iterator<Item = (String, OrgPolicyState)> + '_ {
    MANAGED.into_iter().map(move |(name, description, action)| {
        let state = OrgPolicyState {
            name: name.to_owned(),
            description: description.to_owned(),
            policy_type: PolicyType::Managed,
            definitions: vec![Definition {
                effect: Effect::Allow,
                actions: vec![action],
                resources: vec!["/**".to_owned()],
                conditions_all: Vec::new(),
            }],
            metadata: Metadata::default(),
        };
        (managed_policy_id(org, name), state)
    })
}

/// Plans whichever managed policy of `org` is missing.
pub(in crate::app) fn plan_managed_policies(draft: &mut Draft<'_>, org: &str) -> Result<(), AppError> {
    for (id, state) in managed_policies(org) {
        if draft.get::<OrgPolicy>(&id).is_none() {
            draft.create::<OrgPolicy>(&id, org, OrgPolicyEvent::Added(state))?;
        }
    }
    Ok(())
}

impl App {
    /// Gives every organization that lacks them its managed policies, in one write: a no-op
    /// once they exist, and the migration of a store that predates them.
    pub(in crate::app) async fn seed_org_policies(&self) -> Result<(), AppError> {
        let organizations: Vec<String> = {
            let objects = self.objects()?;
            let lacking = |org: &str| managed_policies(org).any(|(id, _)| objects.get::<OrgPolicy>(&id).is_none());
            let all = objects.page::<Organization>("", None, false, usize::MAX);
            all.into_iter().map(|o| o.id.to_string()).filter(|org| lacking(org)).collect()
        };
        if organizations.is_empty() {
            return Ok(());
        }
        self.write(&Actor::system(), |draft| {
            for org in &organizations {
                if draft.get::<Organization>(org).is_some() {
                    plan_managed_policies(draft, org)?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::methods::MethodTable;
    use crate::model::replica::Replica;
    use crate::store::{Append, Batch, Change, Expect};

    /// A store written before managed policies existed: its organizations get them at the
    /// next start, once, with the ids every replica computes.
    #[tokio::test]
    async fn organizations_that_predate_managed_policies_get_them_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&Config::for_data_dir(dir.path())).await.unwrap();
        let org = "6f1c9a43-7f2b-4c55-9a11-3b1f7f0d2a10";
        let older = Append {
            kind: "organization".into(),
            id: org.into(),
            expect: Expect::Absent,
            event_type: "org.added".into(),
            payload: json!({"name": "acme", "domain": ""}),
            change: Change::Put {
                owner: org.into(),
                parent: String::new(),
                name: Some("acme".into()),
                state: r#"{"name":"acme","domain":""}"#.into(),
                refs: Some(Vec::new()),
            },
        };
        store.append(Batch::new("older", vec![older])).await.unwrap();
        let methods = MethodTable::served().unwrap();
        for start in 0..2 {
            let replica =
                Replica::open(store.clone(), crate::kinds::registry(), Duration::from_millis(20)).await.unwrap();
            let app = App::new(replica, &methods, Duration::from_secs(2)).await.unwrap();
            let objects = app.objects().unwrap();
            let managed = objects.page::<OrgPolicy>(org, None, false, 10);
            let names: Vec<&str> = managed.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["Full access", "Read-only access"], "start {start}");
            for policy in &managed {
                assert_eq!(*policy.id, managed_policy_id(org, &policy.name));
                assert_eq!((policy.policy_type, policy.meta.sequence), (PolicyType::Managed, 1), "created once");
            }
        }
    }

    #[test]
    fn managed_ids_are_uuidv5s_of_the_organization_and_the_name() {
        let org = "6f1c9a43-7f2b-4c55-9a11-3b1f7f0d2a10";
        let id = managed_policy_id(org, "Full access");
        let parsed = Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
        assert_eq!(id, managed_policy_id(org, "Full access"));
        assert_ne!(id, managed_policy_id(org, "Read-only access"));
        assert_ne!(id, managed_policy_id("0d7f3e2a-1111-4c55-9a11-3b1f7f0d2a10", "Full access"));
        assert_eq!(id, Uuid::new_v5(&Uuid::parse_str(org).unwrap(), b"Full access").to_string());
    }
}
