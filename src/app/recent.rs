//! The last decisions this replica made, whoever asked: checks, the front door's own
//! questions and AuthZEN evaluations, for a simulation to decide again under proposed
//! changes. A ring of the questions only: a subject is a name (`token:<id>`, never a
//! secret), and no answer, header or credential is kept.

use std::collections::HashMap;
use std::sync::Mutex;

use iamd_engine::Request;

use super::authz::CheckInput;

/// How many decisions the ring holds; a simulation decides each again, twice.
pub const MAX_RECENT: usize = 1000;

#[derive(Default)]
pub(crate) struct Recent {
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    slots: Vec<CheckInput>,
    /// The slot the next decision takes once the ring is full.
    next: usize,
}

impl Recent {
    /// Keeps a decision's question, over the oldest once full. A full ring's slots are
    /// written in place, so a decision costs no allocation once its texts fit.
    pub(crate) fn record(&self, request: &Request<'_>) {
        let Ok(mut ring) = self.ring.lock() else { return };
        if ring.slots.len() < MAX_RECENT {
            ring.slots.push(CheckInput::default());
            let last = ring.slots.len() - 1;
            ring.next = last;
        }
        let at = ring.next;
        if let Some(slot) = ring.slots.get_mut(at) {
            copy(&mut slot.subject, request.subject);
            if slot.teams != request.teams {
                slot.teams = request.teams.to_vec();
            }
            copy(&mut slot.action, request.action);
            copy(&mut slot.resource, request.resource);
            copy(&mut slot.tenant, request.tenant.unwrap_or_default());
            copy(&mut slot.organization_id, request.organization.unwrap_or_default());
            slot.context.clone_from(request.context);
        }
        ring.next = (at + 1) % MAX_RECENT;
    }

    /// The distinct questions kept, most recent first.
    pub(crate) fn questions(&self) -> Vec<CheckInput> {
        let Ok(ring) = self.ring.lock() else { return Vec::new() };
        let (newer, older) = ring.slots.split_at(ring.next.min(ring.slots.len()));
        // By their texts first: contexts (rarely any) are compared only between questions
        // that agree on those.
        let mut seen: HashMap<Texts<'_>, Vec<&CheckInput>> = HashMap::new();
        let mut distinct = Vec::new();
        for question in newer.iter().rev().chain(older.iter().rev()) {
            let q = question;
            let texts = (&*q.subject, &*q.teams, &*q.action, &*q.resource, &*q.tenant, &*q.organization_id);
            let same = seen.entry(texts).or_default();
            if !same.iter().any(|other| other.context == question.context) {
                same.push(question);
                distinct.push(question.clone());
            }
        }
        distinct
    }
}

/// A question's subject, teams, action, resource, tenant and organization.
type Texts<'a> = (&'a str, &'a [String], &'a str, &'a str, &'a str, &'a str);

/// Writes `text` into `into`, keeping its allocation.
fn copy(into: &mut String, text: &str) {
    into.clear();
    into.push_str(text);
}

#[cfg(test)]
mod tests {
    use iamd_engine::Context;

    use super::*;

    fn ask(recent: &Recent, subject: &str, resource: &str) {
        let context = Context::new();
        let request = Request {
            subject,
            teams: &[],
            action: "iam:users:get",
            resource,
            tenant: None,
            organization: None,
            context: &context,
        };
        recent.record(&request);
    }

    fn subjects(recent: &Recent) -> Vec<String> {
        recent.questions().into_iter().map(|q| format!("{} {}", q.subject, q.resource)).collect()
    }

    #[test]
    fn the_ring_keeps_the_last_questions_most_recent_first_each_once() {
        let recent = Recent::default();
        assert!(recent.questions().is_empty());
        ask(&recent, "user:local:a", "iam:users:x");
        ask(&recent, "user:local:b", "iam:users:x");
        ask(&recent, "user:local:a", "iam:users:x");
        assert_eq!(subjects(&recent), ["user:local:a iam:users:x", "user:local:b iam:users:x"]);

        for i in 0..MAX_RECENT + 5 {
            ask(&recent, &format!("user:local:u{i}"), "iam:users:x");
        }
        let kept = subjects(&recent);
        assert_eq!(kept.len(), MAX_RECENT);
        assert_eq!(
            kept.first().map(String::as_str),
            Some(format!("user:local:u{} iam:users:x", MAX_RECENT + 4).as_str())
        );
        assert_eq!(kept.last().map(String::as_str), Some("user:local:u5 iam:users:x"));
        // A question that differs only by its context is another question.
        let mut context = Context::new();
        context.insert("ip".into(), iamd_engine::Value::String("10.0.0.1".into()));
        let with = Request {
            subject: "user:local:u1003",
            teams: &[],
            action: "iam:users:get",
            resource: "iam:users:x",
            tenant: None,
            organization: None,
            context: &context,
        };
        recent.record(&with);
        let questions = recent.questions();
        assert_eq!(questions.len(), MAX_RECENT);
        assert_eq!(questions[0].context, context);
        assert!(questions[1..].iter().any(|q| q.subject == "user:local:u1003" && q.context.is_empty()));
    }
}
