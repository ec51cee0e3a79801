//! `iamd.iam.v2`: `UserService`, `TeamService`, `TokenService` and `IntrospectionService`.

use std::sync::Arc;

use http::Method;
use tonic::{Request, Response, Status};

use super::iam::writer;
use super::{Api, actor, admitted, if_match, respond, tenants, version, written};
use crate::app::AppError;
use crate::app::iam::teams::UsersChange;
use crate::app::iam::tokens::TokenInput;
use crate::kinds::team::Team;
use crate::kinds::token::Token;
use crate::kinds::user::{User, UserState};
use crate::model::objects::Obj;
use crate::pb::iamd::iam::v2 as pb;
use crate::pb::iamd::iam::v2::introspection_service_server::IntrospectionService;
use crate::pb::iamd::iam::v2::team_service_server::TeamService;
use crate::pb::iamd::iam::v2::token_service_server::TokenService;
use crate::pb::iamd::iam::v2::user_service_server::UserService;
use crate::transcode::routes::{Lookup, RouteTable};
use crate::wkt::Timestamp;

#[tonic::async_trait]
impl UserService for Api {
    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let done = self.app.create_user(&actor, &m.id, user_state(m.name, m.properties)).await?;
        Ok(written(done, version, |u| pb::CreateUserResponse { user: Some(user(&u)) }))
    }

    async fn list_users(
        &self,
        _request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let users = self.app.list_users().await?;
        Ok(Response::new(pb::ListUsersResponse { users: users.iter().map(user).collect() }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let found = self.app.user(&request.get_ref().id).await?;
        Ok(respond(pb::GetUserResponse { user: Some(user(&found)) }, version(&found), None))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.into_inner();
        let done = self.app.update_user(&actor, &m.id, user_state(m.name, m.properties), expected).await?;
        Ok(written(done, version, |u| pb::UpdateUserResponse { user: Some(user(&u)) }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let done = self.app.delete_user(&actor, &request.get_ref().id, expected).await?;
        Ok(written(done, |_| None, |u| pb::DeleteUserResponse { user: Some(user(&u)) }))
    }

    async fn list_user_teams(
        &self,
        request: Request<pb::ListUserTeamsRequest>,
    ) -> Result<Response<pb::ListUserTeamsResponse>, Status> {
        let teams = self.app.user_teams(&request.get_ref().id).await?;
        Ok(Response::new(pb::ListUserTeamsResponse { teams: teams.iter().map(team).collect() }))
    }
}

#[tonic::async_trait]
impl TeamService for Api {
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let done = self.app.create_team(&actor, &m.id, &m.name, &m.tenants).await?;
        Ok(written(done, version, |t| pb::CreateTeamResponse { team: Some(team(&t)) }))
    }

    async fn list_teams(
        &self,
        request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let teams = self.app.list_teams(&tenants(&request)?).await?;
        Ok(Response::new(pb::ListTeamsResponse { teams: teams.iter().map(team).collect() }))
    }

    async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Result<Response<pb::GetTeamResponse>, Status> {
        let found = self.app.team(&request.get_ref().id, &tenants(&request)?).await?;
        Ok(respond(pb::GetTeamResponse { team: Some(team(&found)) }, version(&found), None))
    }

    async fn update_team(
        &self,
        request: Request<pb::UpdateTeamRequest>,
    ) -> Result<Response<pb::UpdateTeamResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let done = self.app.update_team(&actor, &m.id, &m.name, &m.tenants, &filter, expected).await?;
        Ok(written(done, version, |t| pb::UpdateTeamResponse { team: Some(team(&t)) }))
    }

    async fn delete_team(
        &self,
        request: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let done = self.app.delete_team(&actor, &request.get_ref().id, &filter, expected).await?;
        Ok(written(done, |_| None, |t| pb::DeleteTeamResponse { team: Some(team(&t)) }))
    }

    async fn list_team_users(
        &self,
        request: Request<pb::ListTeamUsersRequest>,
    ) -> Result<Response<pb::ListTeamUsersResponse>, Status> {
        let found = self.app.team(&request.get_ref().id, &tenants(&request)?).await?;
        let etag = version(&found);
        Ok(respond(pb::ListTeamUsersResponse { user_ids: found.users.clone() }, etag, None))
    }

    async fn add_team_users(
        &self,
        request: Request<pb::AddTeamUsersRequest>,
    ) -> Result<Response<pb::AddTeamUsersResponse>, Status> {
        let (actor, filter) = (actor(&request)?, tenants(&request)?);
        let m = request.into_inner();
        let done = self.app.change_team_users(&actor, &m.id, UsersChange::Add, &m.user_ids, &filter).await?;
        Ok(written(done, version, |t| pb::AddTeamUsersResponse { user_ids: t.users.clone() }))
    }

    async fn remove_team_users(
        &self,
        request: Request<pb::RemoveTeamUsersRequest>,
    ) -> Result<Response<pb::RemoveTeamUsersResponse>, Status> {
        let (actor, filter) = (actor(&request)?, tenants(&request)?);
        let m = request.into_inner();
        let done = self.app.change_team_users(&actor, &m.id, UsersChange::Remove, &m.user_ids, &filter).await?;
        Ok(written(done, version, |t| pb::RemoveTeamUsersResponse { user_ids: t.users.clone() }))
    }
}

#[tonic::async_trait]
impl TokenService for Api {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let input = token_input(m.id, m.name, m.active, m.tenants, m.user_id, m.expires_at)?;
        let done = self.app.create_token(&actor, input).await?;
        Ok(written(
            done,
            |issued| version(&issued.token),
            |issued| pb::CreateTokenResponse {
                token: Some(pb::Token { value: issued.secret, ..token(&issued.token) }),
            },
        ))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let tokens = self.app.list_tokens(&tenants(&request)?).await?;
        Ok(Response::new(pb::ListTokensResponse { tokens: tokens.iter().map(token).collect() }))
    }

    async fn get_token(&self, request: Request<pb::GetTokenRequest>) -> Result<Response<pb::GetTokenResponse>, Status> {
        let found = self.app.token(&request.get_ref().id, &tenants(&request)?).await?;
        Ok(respond(pb::GetTokenResponse { token: Some(token(&found)) }, version(&found), None))
    }

    async fn update_token(
        &self,
        request: Request<pb::UpdateTokenRequest>,
    ) -> Result<Response<pb::UpdateTokenResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let input = token_input(m.id, m.name, m.active, m.tenants, m.user_id, m.expires_at)?;
        let done = self.app.update_token(&actor, input, &filter, expected).await?;
        Ok(written(done, version, |t| pb::UpdateTokenResponse { token: Some(token(&t)) }))
    }

    async fn delete_token(
        &self,
        request: Request<pb::DeleteTokenRequest>,
    ) -> Result<Response<pb::DeleteTokenResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let done = self.app.delete_token(&actor, &request.get_ref().id, &filter, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteTokenResponse {}))
    }
}

#[tonic::async_trait]
impl IntrospectionService for Api {
    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        let admitted = admitted(&request)?.clone();
        let header = admitted.tenants.header().clone();
        let mut endpoints = std::collections::HashMap::new();
        for (i, path) in request.get_ref().paths.iter().enumerate() {
            if !path.starts_with('/') {
                let message = format!("`{path}` is not an API path: send one such as `/iam/users`");
                return Err(AppError::invalid(&format!("paths[{i}]"), message).into());
            }
            let may = |method: Method| {
                permission(&self.routes, &method, path).is_some_and(|(action, resource)| {
                    self.app.authorize(&admitted.actor, &action, &resource, header.clone()).is_ok()
                })
            };
            let allowed = pb::MethodsAllowed {
                get: may(Method::GET),
                put: may(Method::PUT),
                post: may(Method::POST),
                delete: may(Method::DELETE),
                patch: may(Method::PATCH),
            };
            endpoints.insert(path.clone(), allowed);
        }
        // Decided against this state, like a check: its position is the answer's token.
        let position = self.app.position()?;
        Ok(respond(pb::IntrospectResponse { endpoints }, None, Some(position)))
    }
}

/// The action and resource a call of `method` on `path` is authorized for, its
/// placeholders filled from the path's variables; `None` when no route has it, or the
/// resource needs a field the path does not hold.
fn permission(routes: &Arc<RouteTable>, method: &Method, path: &str) -> Option<(String, String)> {
    let Lookup::Found(route, bindings) = routes.lookup(method, path) else { return None };
    let rule = route.api.permission()?;
    let resource = rule.resource.fill(|fields| {
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        bindings
            .iter()
            .find(|b| b.field_path.iter().map(String::as_str).eq(names.iter().copied()))
            .map(|b| b.value.clone())
    })?;
    Some((rule.action.clone(), resource))
}

/// A token as CreateToken and UpdateToken both send it; the expiry as the store keeps it.
fn token_input(
    id: String,
    name: String,
    active: Option<bool>,
    tenants: Vec<String>,
    user: String,
    expires_at: Option<Timestamp>,
) -> Result<TokenInput, Status> {
    let invalid = || Status::from(AppError::invalid("expiresAt", "the expiry is not a valid instant"));
    let expires_at = expires_at.map(|at| at.to_micros().ok_or_else(invalid)).transpose()?;
    Ok(TokenInput { id, name, active, tenants, user, expires_at })
}

fn user_state(name: String, properties: std::collections::HashMap<String, String>) -> UserState {
    UserState { name, properties: properties.into_iter().collect() }
}

fn user(user: &Obj<User>) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        name: user.name.clone(),
        properties: user.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

fn team(team: &Obj<Team>) -> pb::Team {
    pb::Team { id: team.id.to_string(), name: team.name.clone(), tenants: team.tenants.clone() }
}

fn token(token: &Obj<Token>) -> pb::Token {
    pb::Token {
        id: token.id.to_string(),
        name: token.name.clone(),
        value: String::new(),
        active: token.active,
        tenants: token.tenants.clone(),
        user_id: token.user.clone(),
        created_at: Some(Timestamp::from_micros(token.meta.created_at)),
        updated_at: Some(Timestamp::from_micros(token.meta.updated_at)),
        expires_at: token.expires_at.map(Timestamp::from_micros),
    }
}
