//! Simulation: checks decided on the state as it is and as proposed changes would leave it.
//!
//! A change is its write method's own use case, run as a rehearsal ([`rehearse`]): validated
//! and planned against the state as the method would, failing with the method's errors, and
//! kept instead of committed. What the plans would leave is laid over the engine as an
//! [`Overlay`], so the state is neither copied nor changed, and nothing is stored.

use std::future::Future;
use std::sync::{Arc, Mutex};

use iamd_engine::{Decision, Explanation, Overlay};

use super::authz::{CheckInput, Decided, MAX_BATCH, known_organization, valid_check};
use super::{App, AppError, ErrorKind};
use crate::model::draft::Draft;
use crate::model::kind::Key;
use crate::model::objects::{Objects, Proposed};
use crate::model::replica::Written;

/// How many changes one simulation lays over the state.
pub const MAX_CHANGES: usize = 100;

tokio::task_local! {
    /// Set while [`rehearse`] runs a use case: [`App::write`] plans into it and commits
    /// nothing. A task-local rather than a parameter, so that every write method rehearses
    /// exactly as it writes, with no second path through it.
    static REHEARSAL: Arc<Mutex<Vec<Proposed>>>;
}

/// Runs `use_case`, a future of one of [`App`]'s write methods, as a rehearsal: its writes are
/// validated and planned as always, and kept instead of committed. Answers what the use case
/// answered, and what its writes would leave.
pub async fn rehearse<T>(use_case: impl Future<Output = T>) -> (T, Vec<Proposed>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let answer = REHEARSAL.scope(kept.clone(), use_case).await;
    let proposed = kept.lock().map(|mut kept| std::mem::take(&mut *kept)).unwrap_or_default();
    (answer, proposed)
}

/// One check, decided on the state and on the state with the changes.
#[derive(Clone, Debug)]
pub struct Simulated {
    pub check: CheckInput,
    pub before: Decision,
    pub after: Explanation,
    /// One of the recent decisions, rather than a check the request named.
    pub recent: bool,
}

impl Simulated {
    pub fn changed(&self) -> bool {
        self.before.allowed != self.after.decision.allowed
    }
}

impl App {
    /// The write of a rehearsal, in place of [`App::write`]'s: planned once against the
    /// state, and kept. `None` outside a rehearsal.
    pub(super) fn rehearsed_write<T>(
        &self,
        plan: &mut impl FnMut(&mut Draft<'_>) -> Result<T, AppError>,
    ) -> Option<Result<(T, Written), AppError>> {
        let kept = REHEARSAL.try_with(Arc::clone).ok()?;
        Some((|| {
            let objects = self.objects()?;
            let mut draft = Draft::new(&objects);
            let value = plan(&mut draft)?;
            let plan = draft.finish();
            // What the store's unique names would refuse at commit.
            for (key, parent, name) in plan.names() {
                if objects.named(key.kind, parent, name).is_some_and(|holder| *holder != key.id) {
                    let reason = self.replica.registry().name_taken(key.kind);
                    return Err(super::error::name_taken(reason, key.kind, name));
                }
            }
            let proposed = plan.proposed(&objects);
            let written = Written::rehearsed(&objects, &proposed, super::access::now());
            kept.lock()
                .map_err(|_| AppError::new(ErrorKind::Internal, "INTERNAL", "a rehearsal's writes were poisoned"))?
                .extend(proposed);
            Ok((value, written))
        })())
    }

    /// Decides `checks`, and with `recent` the last decisions this replica made, on the state
    /// and on the state with every change of `changes` (one list of proposed writes per
    /// change, from [`rehearse`]) laid over it. The caller has held the request to
    /// [`simulation_size`] before rehearsing its changes.
    pub async fn simulate(
        &self,
        changes: &[Vec<Proposed>],
        checks: &[CheckInput],
        recent: bool,
    ) -> Result<Decided<Vec<Simulated>>, AppError> {
        for (i, check) in checks.iter().enumerate() {
            valid_check(&format!("checks[{i}]."), check)?;
        }
        one_write_per_object(changes)?;
        let questions = {
            let mut questions: Vec<(CheckInput, bool)> = checks.iter().map(|c| (c.clone(), false)).collect();
            if recent {
                let asked = self.recent.questions();
                questions.extend(asked.into_iter().map(|q| (q, true)));
            }
            questions
        };
        let objects = self.objects()?;
        for (i, check) in checks.iter().enumerate() {
            known_organization(&objects, &format!("checks[{i}]."), check)?;
        }
        let answer = decide(&objects, changes, questions);
        Ok(Decided { answer, position: objects.position() })
    }
}

/// At most [`MAX_CHANGES`] changes and [`MAX_BATCH`] checks.
pub fn simulation_size(changes: usize, checks: usize) -> Result<(), AppError> {
    if changes > MAX_CHANGES {
        let message = format!("a simulation lays at most {MAX_CHANGES} changes over the state, not {changes}");
        return Err(AppError::invalid("changes", message));
    }
    if checks > MAX_BATCH {
        return Err(AppError::invalid(
            "checks",
            format!("a simulation decides at most {MAX_BATCH} checks, not {checks}"),
        ));
    }
    Ok(())
}

/// Changes are laid over the state together, each planned on the state as it is: two that
/// write one object (an update and a delete of it, or one's cascade) would each hide the
/// other.
fn one_write_per_object(changes: &[Vec<Proposed>]) -> Result<(), AppError> {
    let mut writer: std::collections::HashMap<&Key, usize> = std::collections::HashMap::new();
    for (i, proposed) in changes.iter().enumerate() {
        for p in proposed {
            if let Some(first) = writer.insert(&p.key, i).filter(|first| *first != i) {
                return Err(AppError::invalid(
                    &format!("changes[{i}]"),
                    format!("changes[{first}] writes {} `{}` too: one change per object", p.key.kind, p.key.id),
                ));
            }
        }
    }
    Ok(())
}

fn decide(objects: &Objects, changes: &[Vec<Proposed>], questions: Vec<(CheckInput, bool)>) -> Vec<Simulated> {
    let engine = objects.engine();
    let mut overlay = Overlay::new(engine);
    for proposed in changes {
        objects.propose(proposed, &mut overlay);
    }
    questions
        .into_iter()
        .map(|(check, recent)| {
            let request = check.request();
            let before = engine.check(&request);
            let after = overlay.explain(&request);
            Simulated { check, before, after, recent }
        })
        .collect()
}
