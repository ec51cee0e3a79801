//! Local teams: create, list, read, overwrite and delete, and their users. A team's delete
//! takes its exact member string out of every policy in the same transaction. The team
//! `admins` cannot be deleted and the user `admin` cannot leave it, so the instance keeps an
//! administrator.

use super::super::access::may_assign_tenants;
use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use super::users::{ADMIN, forget_member, protected};
use super::{
    MAX_ID, TenantFilter, absent, find, find_in, required, tenants_exist, valid_id, valid_list, valid_own_tenants,
};
use crate::kinds::team::{Team, TeamEvent, TeamState, team_subject};
use crate::kinds::user::User;
use crate::model::kind::Kind;
use crate::model::objects::Obj;

/// The team the bootstrap makes, which holds the administrators.
pub const ADMINS: &str = "admins";

/// How a users method changes a team.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsersChange {
    Add,
    Remove,
}

impl App {
    pub async fn create_team(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        tenants: &[String],
    ) -> Result<Receipt<Obj<Team>>, AppError> {
        valid_id("id", "team id", id, MAX_ID)?;
        required("name", "team name", name)?;
        valid_own_tenants("tenants", tenants)?;
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<Team>(draft, id)?;
                may_assign_tenants(draft.engine(), actor, &[], tenants)?;
                tenants_exist(draft, tenants.iter())?;
                let team = TeamState { name: name.to_owned(), tenants: tenants.to_vec(), users: Vec::new() };
                Ok(draft.create::<Team>(id, &instance, TeamEvent::Added(team))?)
            })
            .await?;
        Ok(Receipt::of(written.get::<Team>(id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_teams(&self, filter: &TenantFilter) -> Result<Vec<Obj<Team>>, AppError> {
        Ok(filter.list::<Team>(&*self.objects()?))
    }

    pub async fn team(&self, id: &str, filter: &TenantFilter) -> Result<Obj<Team>, AppError> {
        find::<Team>(&*self.objects()?, id, filter)
    }

    /// Overwrites the name and the tenants.
    pub async fn update_team(
        &self,
        actor: &Actor,
        id: &str,
        name: &str,
        tenants: &[String],
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<Team>>, AppError> {
        required("name", "team name", name)?;
        valid_own_tenants("tenants", tenants)?;
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<Team>(draft, id, filter)?;
                check_version(expected, &current.meta, "team")?;
                may_assign_tenants(draft.engine(), actor, &current.tenants, tenants)?;
                tenants_exist(draft, tenants.iter())?;
                if current.name == name && current.tenants == tenants {
                    return Ok(Some(current));
                }
                let event = TeamEvent::Changed {
                    name: (current.name != name).then(|| name.to_owned()),
                    tenants: (current.tenants != tenants).then(|| tenants.to_vec()),
                };
                draft.change(&current, event)?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    /// Deletes a team; answers it as it was.
    pub async fn delete_team(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<Team>>, AppError> {
        if id == ADMINS {
            return Err(protected(format!(
                "the team `{ADMINS}` cannot be deleted: it keeps the instance administrable"
            )));
        }
        let (team, written) = self
            .write(actor, |draft| {
                let current = find_in::<Team>(draft, id, filter)?;
                check_version(expected, &current.meta, "team")?;
                forget_member(draft, &team_subject(id))?;
                draft.delete(&current, Team::removal(&current.state))?;
                Ok(current)
            })
            .await?;
        Ok(Receipt::of(team, &written))
    }

    /// Adds users (who must exist) or removes them; answers the team with its resulting
    /// list. Adding a user there already, or removing one absent, changes nothing.
    pub async fn change_team_users(
        &self,
        actor: &Actor,
        id: &str,
        how: UsersChange,
        users: &[String],
        filter: &TenantFilter,
    ) -> Result<Receipt<Obj<Team>>, AppError> {
        if users.is_empty() {
            return Err(AppError::invalid("userIds", "at least one user id is required"));
        }
        valid_list("userIds", users, |u| super::id_grammar(u, MAX_ID).map(|m| format!("user {m}")))?;
        if id == ADMINS && how == UsersChange::Remove && users.iter().any(|u| u == ADMIN) {
            return Err(protected(format!("the user `{ADMIN}` cannot leave the team `{ADMINS}`")));
        }
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<Team>(draft, id, filter)?;
                let event = match how {
                    UsersChange::Add => {
                        for user in users {
                            if draft.get::<User>(user).is_none() {
                                return Err(super::not_found::<User>(user).by_state());
                            }
                        }
                        let new: Vec<String> = users.iter().filter(|u| !current.users.contains(u)).cloned().collect();
                        (!new.is_empty()).then_some(TeamEvent::UsersAdded { users: new })
                    }
                    UsersChange::Remove => {
                        let gone: Vec<String> = users.iter().filter(|u| current.users.contains(u)).cloned().collect();
                        (!gone.is_empty()).then_some(TeamEvent::UsersRemoved { users: gone })
                    }
                };
                let Some(event) = event else { return Ok(Some(current)) };
                draft.change(&current, event)?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }
}
