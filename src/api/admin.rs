//! `iamd.admin.v1.AdminService`: the domain policy and its deprecated Org IAM view.

use tonic::{Request, Response, Status};

use super::{Api, actor, if_match, object_details, respond, written};
use crate::app::Details;
use crate::app::domain_policy::DomainPolicy;
use crate::kinds::domain_policy::DomainSettings;
use crate::pb::iamd::admin::v1 as pb;
use crate::pb::iamd::admin::v1::admin_service_server::AdminService;

type Answer<T> = Result<Response<T>, Status>;

fn details(details: Details) -> Option<pb::ObjectDetails> {
    Some(object_details(details))
}

fn version(details: &Details) -> Option<u64> {
    Some(details.sequence)
}

fn org_iam(policy: DomainPolicy) -> pb::OrgIamPolicy {
    pb::OrgIamPolicy {
        details: details(policy.details),
        user_login_must_be_domain: policy.settings.user_login_must_be_domain,
        is_default: policy.is_default,
    }
}

fn domain(policy: DomainPolicy) -> pb::DomainPolicy {
    pb::DomainPolicy {
        details: details(policy.details),
        user_login_must_be_domain: policy.settings.user_login_must_be_domain,
        is_default: policy.is_default,
        validate_org_domains: policy.settings.validate_org_domains,
        smtp_sender_address_matches_instance_domain: policy.settings.smtp_sender_address_matches_instance_domain,
    }
}

fn settings(user_login_must_be_domain: bool, validate_org_domains: bool, smtp: bool) -> DomainSettings {
    DomainSettings {
        user_login_must_be_domain,
        validate_org_domains,
        smtp_sender_address_matches_instance_domain: smtp,
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn get_org_iam_policy(&self, _: Request<pb::GetOrgIamPolicyRequest>) -> Answer<pb::GetOrgIamPolicyResponse> {
        let policy = self.app.default_domain_policy().await?;
        let etag = version(&policy.details);
        Ok(respond(pb::GetOrgIamPolicyResponse { policy: Some(org_iam(policy)) }, etag, None))
    }

    async fn update_org_iam_policy(
        &self,
        request: Request<pb::UpdateOrgIamPolicyRequest>,
    ) -> Answer<pb::UpdateOrgIamPolicyResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let wanted = DomainSettings::from_org_iam(request.get_ref().user_login_must_be_domain);
        let done = self.app.change_default_domain_policy(&actor, wanted, expected).await?;
        Ok(written(done, version, |d| pb::UpdateOrgIamPolicyResponse { details: details(d) }))
    }

    async fn get_custom_org_iam_policy(
        &self,
        request: Request<pb::GetCustomOrgIamPolicyRequest>,
    ) -> Answer<pb::GetCustomOrgIamPolicyResponse> {
        let policy = self.app.org_domain_policy(&request.get_ref().org_id).await?;
        let (is_default, etag) = (policy.is_default, version(&policy.details));
        #[allow(deprecated)]
        let response = pb::GetCustomOrgIamPolicyResponse { policy: Some(org_iam(policy)), is_default };
        Ok(respond(response, etag, None))
    }

    async fn add_custom_org_iam_policy(
        &self,
        request: Request<pb::AddCustomOrgIamPolicyRequest>,
    ) -> Answer<pb::AddCustomOrgIamPolicyResponse> {
        let actor = actor(&request)?;
        let message = request.into_inner();
        let wanted = DomainSettings::from_org_iam(message.user_login_must_be_domain);
        let done = self.app.add_org_domain_policy(&actor, &message.org_id, wanted).await?;
        Ok(written(done, version, |d| pb::AddCustomOrgIamPolicyResponse { details: details(d) }))
    }

    async fn update_custom_org_iam_policy(
        &self,
        request: Request<pb::UpdateCustomOrgIamPolicyRequest>,
    ) -> Answer<pb::UpdateCustomOrgIamPolicyResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let message = request.into_inner();
        let wanted = DomainSettings::from_org_iam(message.user_login_must_be_domain);
        let done = self.app.change_org_domain_policy(&actor, &message.org_id, wanted, expected).await?;
        Ok(written(done, version, |d| pb::UpdateCustomOrgIamPolicyResponse { details: details(d) }))
    }

    async fn reset_custom_org_iam_policy_to_default(
        &self,
        request: Request<pb::ResetCustomOrgIamPolicyToDefaultRequest>,
    ) -> Answer<pb::ResetCustomOrgIamPolicyToDefaultResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let done = self.app.remove_org_domain_policy(&actor, &request.get_ref().org_id, expected).await?;
        Ok(written(done, |_| None, |d| pb::ResetCustomOrgIamPolicyToDefaultResponse { details: details(d) }))
    }

    async fn get_domain_policy(&self, _: Request<pb::GetDomainPolicyRequest>) -> Answer<pb::GetDomainPolicyResponse> {
        let policy = self.app.default_domain_policy().await?;
        let etag = version(&policy.details);
        Ok(respond(pb::GetDomainPolicyResponse { policy: Some(domain(policy)) }, etag, None))
    }

    async fn update_domain_policy(
        &self,
        request: Request<pb::UpdateDomainPolicyRequest>,
    ) -> Answer<pb::UpdateDomainPolicyResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.get_ref();
        let wanted = settings(
            m.user_login_must_be_domain,
            m.validate_org_domains,
            m.smtp_sender_address_matches_instance_domain,
        );
        let done = self.app.change_default_domain_policy(&actor, wanted, expected).await?;
        Ok(written(done, version, |d| pb::UpdateDomainPolicyResponse { details: details(d) }))
    }

    async fn get_custom_domain_policy(
        &self,
        request: Request<pb::GetCustomDomainPolicyRequest>,
    ) -> Answer<pb::GetCustomDomainPolicyResponse> {
        let policy = self.app.org_domain_policy(&request.get_ref().org_id).await?;
        let (is_default, etag) = (policy.is_default, version(&policy.details));
        #[allow(deprecated)]
        let response = pb::GetCustomDomainPolicyResponse { policy: Some(domain(policy)), is_default };
        Ok(respond(response, etag, None))
    }

    async fn add_custom_domain_policy(
        &self,
        request: Request<pb::AddCustomDomainPolicyRequest>,
    ) -> Answer<pb::AddCustomDomainPolicyResponse> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let wanted = settings(
            m.user_login_must_be_domain,
            m.validate_org_domains,
            m.smtp_sender_address_matches_instance_domain,
        );
        let done = self.app.add_org_domain_policy(&actor, &m.org_id, wanted).await?;
        Ok(written(done, version, |d| pb::AddCustomDomainPolicyResponse { details: details(d) }))
    }

    async fn update_custom_domain_policy(
        &self,
        request: Request<pb::UpdateCustomDomainPolicyRequest>,
    ) -> Answer<pb::UpdateCustomDomainPolicyResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.into_inner();
        let wanted = settings(
            m.user_login_must_be_domain,
            m.validate_org_domains,
            m.smtp_sender_address_matches_instance_domain,
        );
        let done = self.app.change_org_domain_policy(&actor, &m.org_id, wanted, expected).await?;
        Ok(written(done, version, |d| pb::UpdateCustomDomainPolicyResponse { details: details(d) }))
    }

    async fn reset_custom_domain_policy_to_default(
        &self,
        request: Request<pb::ResetCustomDomainPolicyToDefaultRequest>,
    ) -> Answer<pb::ResetCustomDomainPolicyToDefaultResponse> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let done = self.app.remove_org_domain_policy(&actor, &request.get_ref().org_id, expected).await?;
        Ok(written(done, |_| None, |d| pb::ResetCustomDomainPolicyToDefaultResponse { details: details(d) }))
    }
}
