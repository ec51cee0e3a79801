//! `iamd.accounts.v1.OrganizationService`.

use tonic::{Request, Response, Status};

use super::{Api, actor, if_match, respond, version, written};
use crate::app::organizations::OrganizationPatch;
use crate::app::page::PageRequest;
use crate::kinds::organization::Organization;
use crate::model::objects::Obj;
use crate::pb::iamd::accounts::v1 as pb;
use crate::pb::iamd::accounts::v1::organization_service_server::OrganizationService;
use crate::wkt::Timestamp;

#[tonic::async_trait]
impl OrganizationService for Api {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::CreateOrganizationResponse>, Status> {
        let actor = actor(&request)?;
        let message = request.into_inner();
        let done = self.app.create_organization(&actor, &message.name, &message.domain).await?;
        Ok(written(done, version, |o| pb::CreateOrganizationResponse { organization: Some(to_pb(o)) }))
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let message = request.into_inner();
        let page = PageRequest { limit: message.limit, token: &message.page_token, reverse: message.reverse };
        let (organizations, next_page_token) = self.app.list_organizations(&page).await?;
        Ok(Response::new(pb::ListOrganizationsResponse {
            results: organizations.into_iter().map(to_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::GetOrganizationResponse>, Status> {
        let organization = self.app.organization(&request.get_ref().organization_id).await?;
        let etag = version(&organization);
        Ok(respond(pb::GetOrganizationResponse { organization: Some(to_pb(organization)) }, etag, None))
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::UpdateOrganizationResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let message = request.into_inner();
        let patch = OrganizationPatch { name: message.name, domain: message.domain };
        let done = self.app.update_organization(&actor, &message.organization_id, patch, expected).await?;
        Ok(written(done, version, |o| pb::UpdateOrganizationResponse { organization: Some(to_pb(o)) }))
    }

    async fn delete_organization(
        &self,
        request: Request<pb::DeleteOrganizationRequest>,
    ) -> Result<Response<pb::DeleteOrganizationResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let done = self.app.delete_organization(&actor, &request.get_ref().organization_id, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteOrganizationResponse {}))
    }
}

fn to_pb(organization: Obj<Organization>) -> pb::Organization {
    pb::Organization {
        id: organization.id.to_string(),
        name: organization.name.clone(),
        domain: organization.domain.clone(),
        created_at: Some(Timestamp::from_micros(organization.meta.created_at)),
        updated_at: Some(Timestamp::from_micros(organization.meta.updated_at)),
    }
}
