//! Local users: create, list, read, rename and delete. A user's delete takes its exact
//! member string out of every policy, deletes the assignments whose principal is exactly the
//! user, and (by the kinds' references) its tokens and its place in teams, in one
//! transaction. The user `admin` cannot be deleted, so the instance keeps an administrator.

use super::super::access::may_set_properties;
use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, ErrorKind, Receipt, changed_or_current, check_version};
use super::{MAX_ID, absent, find, find_in, in_list_order, required, valid_id};
use crate::kinds::assignment::{Assignment, PRINCIPAL_INDEX};
use crate::kinds::iam_policy::{IamPolicy, IamPolicyEvent, MEMBER_INDEX};
use crate::kinds::team::Team;
use crate::kinds::user::{User, UserEvent, UserState, user_subject};
use crate::model::draft::Draft;
use crate::model::kind::Kind;
use crate::model::objects::Obj;

/// The user the bootstrap makes, whom nobody can delete.
pub const ADMIN: &str = "admin";

/// FAILED_PRECONDITION: a change that would lock the instance out.
pub(super) fn protected(message: String) -> AppError {
    AppError::new(ErrorKind::FailedPrecondition, "PROTECTED", message)
}

impl App {
    pub async fn create_user(&self, actor: &Actor, id: &str, user: UserState) -> Result<Receipt<Obj<User>>, AppError> {
        valid_id("id", "user id", id, MAX_ID)?;
        valid_user(&user)?;
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<User>(draft, id)?;
                if !user.properties.is_empty() {
                    may_set_properties(draft.engine(), actor, id)?;
                }
                Ok(draft.create::<User>(id, &instance, UserEvent::Added(user.clone()))?)
            })
            .await?;
        Ok(Receipt::of(written.get::<User>(id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_users(&self) -> Result<Vec<Obj<User>>, AppError> {
        Ok(self.objects()?.page::<User>("", None, false, usize::MAX))
    }

    pub async fn user(&self, id: &str) -> Result<Obj<User>, AppError> {
        find::<User>(&*self.objects()?, id, &Default::default())
    }

    /// The teams a user belongs to, in creation order: the teams that reference it.
    pub async fn user_teams(&self, id: &str) -> Result<Vec<Obj<Team>>, AppError> {
        let objects = self.objects()?;
        let user = find::<User>(&objects, id, &Default::default())?;
        let key = user.key();
        let teams = objects.referrers(&key).filter(|key| key.kind == Team::NAME);
        Ok(in_list_order(teams.filter_map(|key| objects.get::<Team>(&key.id)).collect()))
    }

    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        user: UserState,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<User>>, AppError> {
        valid_user(&user)?;
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<User>(draft, id, &Default::default())?;
                check_version(expected, &current.meta, "user")?;
                if *current.state == user {
                    return Ok(Some(current));
                }
                if current.properties != user.properties {
                    may_set_properties(draft.engine(), actor, id)?;
                }
                draft.change(
                    &current,
                    UserEvent::Changed { name: user.name.clone(), properties: user.properties.clone() },
                )?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    /// Deletes a user and what goes with it (see the module's comment); answers the user as
    /// it was.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<User>>, AppError> {
        if id == ADMIN {
            return Err(protected(format!(
                "the user `{ADMIN}` cannot be deleted: it keeps the instance administrable"
            )));
        }
        let (user, written) = self
            .write(actor, |draft| {
                let current = find_in::<User>(draft, id, &Default::default())?;
                check_version(expected, &current.meta, "user")?;
                let subject = user_subject(id);
                forget_member(draft, &subject)?;
                for key in draft.lookup(PRINCIPAL_INDEX, &subject) {
                    if let Some(assignment) = draft.get::<Assignment>(&key.id) {
                        draft.delete(&assignment, Assignment::removal(&assignment.state))?;
                    }
                }
                draft.delete(&current, User::removal(&current.state))?;
                Ok(current)
            })
            .await?;
        Ok(Receipt::of(user, &written))
    }
}

/// Takes the exact member string `member` out of every policy that names it.
pub(super) fn forget_member(draft: &mut Draft<'_>, member: &str) -> Result<(), AppError> {
    for key in draft.lookup(MEMBER_INDEX, member) {
        if let Some(policy) = draft.get::<IamPolicy>(&key.id) {
            draft.change(&policy, IamPolicyEvent::MembersRemoved { members: vec![member.to_owned()] })?;
        }
    }
    Ok(())
}

/// How many properties a user holds, and how long their keys and values are.
const MAX_PROPERTIES: usize = 64;
const MAX_PROPERTY_KEY: usize = 64;
const MAX_PROPERTY_VALUE: usize = 1024;

fn valid_user(user: &UserState) -> Result<(), AppError> {
    required("name", "user name", &user.name)?;
    if user.properties.len() > MAX_PROPERTIES {
        return Err(AppError::invalid(
            "properties",
            format!("a user holds at most {MAX_PROPERTIES} properties, not {}", user.properties.len()),
        ));
    }
    for (key, value) in &user.properties {
        let key_ok = (1..=MAX_PROPERTY_KEY).contains(&key.len())
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !key_ok {
            return Err(AppError::invalid(
                "properties",
                format!("property `{key}`: a key is 1 to {MAX_PROPERTY_KEY} characters of `A-Z a-z 0-9 _ - .`"),
            ));
        }
        if value.chars().count() > MAX_PROPERTY_VALUE {
            return Err(AppError::invalid(
                "properties",
                format!("property `{key}`: a value is at most {MAX_PROPERTY_VALUE} characters"),
            ));
        }
    }
    Ok(())
}
