//! `iamd.history.v1.HistoryService`.

use tonic::{Request, Response, Status};

use super::Api;
use crate::app::AppError;
use crate::app::history::HistoryQuery;
use crate::pb::iamd::history::v1 as pb;
use crate::pb::iamd::history::v1::history_service_server::HistoryService;
use crate::store::Event;
use crate::wkt::Timestamp;

#[tonic::async_trait]
impl HistoryService for Api {
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let message = request.into_inner();
        let object = match (message.object_type.as_str(), message.object_id.as_str()) {
            ("", "") => None,
            ("", _) => return Err(AppError::invalid("objectType", "objectId needs objectType").into()),
            (_, "") => return Err(AppError::invalid("objectId", "objectType needs objectId").into()),
            (kind, id) => Some((kind, id)),
        };
        let query = HistoryQuery {
            object,
            after_position: message.after_position,
            limit: message.limit,
            page_token: &message.page_token,
        };
        let (events, next_page_token) = self.app.list_events(&query).await?;
        let events = events.into_iter().map(to_pb).collect::<Result<_, Status>>()?;
        Ok(Response::new(pb::ListEventsResponse { events, next_page_token }))
    }
}

fn to_pb(event: Event) -> Result<pb::Event, Status> {
    // Payloads are JSON objects; anything else would be a store fault, not the client's.
    let payload = serde_json::from_value(event.payload)
        .map_err(|e| Status::internal(format!("event {} has a payload that is not an object: {e}", event.position)))?;
    Ok(pb::Event {
        position: event.position,
        object_type: event.kind,
        object_id: event.object_id,
        sequence: event.sequence,
        event_type: event.event_type,
        payload: Some(payload),
        actor: event.actor,
        created_at: Some(Timestamp::from_micros(event.created_at)),
        resource_owner: event.owner,
    })
}
