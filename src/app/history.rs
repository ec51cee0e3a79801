//! The audit trail: the events of one object or of the whole instance, in log order, a page
//! at a time. Read from the store itself, not the replica's state: the log is the record.

use super::page::{ListId, limit};
use super::{App, AppError};
use crate::store::{Event, Located, LogCursor};

pub struct HistoryQuery<'a> {
    /// (object type, object id), or the whole instance.
    pub object: Option<(&'a str, &'a str)>,
    pub after_position: u64,
    pub limit: Option<i32>,
    pub page_token: &'a str,
}

impl App {
    pub async fn list_events(&self, query: &HistoryQuery<'_>) -> Result<(Vec<Event>, Option<String>), AppError> {
        let store = self.replica.store();
        let scope = query.object.map(|(kind, id)| format!("{kind}/{id}")).unwrap_or_default();
        let list = ListId { list: "events", scope: &scope };
        let limit = limit(query.limit)?;
        let after = match (query.page_token, query.after_position) {
            ("", 0) => LogCursor::default(),
            ("", position) => match store.locate(position).await? {
                Located::At(cursor) => cursor,
                _ => {
                    return Err(AppError::invalid(
                        "afterPosition",
                        format!("position {position} is not in the event log"),
                    ));
                }
            },
            (_, 0) => {
                let (epoch, position) = self.pages.open(&list, false, query.page_token)?;
                let parse = |text: &str| text.parse::<u64>().map_err(|_| invalid_token());
                LogCursor { epoch: parse(&epoch)?, position: parse(&position)? }
            }
            _ => return Err(AppError::invalid("afterPosition", "send either afterPosition or a page token, not both")),
        };
        let mut rows = store.read_log(query.object, after, limit + 1).await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| {
                self.pages.seal(&list, false, &last.cursor.epoch.to_string(), &last.cursor.position.to_string())
            })
        } else {
            None
        };
        let registry = self.replica.registry();
        let events = rows
            .into_iter()
            .map(|row| {
                let mut event = row.event;
                if let serde_json::Value::Object(payload) = &mut event.payload {
                    for field in registry.hidden_fields(&event.kind) {
                        payload.remove(*field);
                    }
                }
                event
            })
            .collect();
        Ok((events, next))
    }
}

fn invalid_token() -> AppError {
    AppError::invalid("pageToken", "the page token is not valid for this list")
}
