//! A policy's definitions as a client writes them, checked at write time (A.5): the effect,
//! the actions, path patterns for resources, and `conditionsAll`, whose values are strings
//! that numeric, bool, date and CIDR operators must be able to read. Every refusal names the
//! field at fault, such as `definitions[0].conditionsAll[1].any.numericLessThan.size`.

use std::collections::BTreeSet;

use iamd_engine::path_pattern;
use serde_json::Value;

use super::super::AppError;
use super::super::conditions::valid_conditions;
use crate::kinds::org_policy::{Action, Definition, Effect};

/// Bounds that keep one policy small enough to evaluate quickly.
pub const MAX_DEFINITIONS: usize = 100;
const MAX_RESOURCES: usize = 100;

/// A definition as the request holds it.
#[derive(Clone, Debug, Default)]
pub struct DefinitionInput {
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// Each element as JSON: `{"all"|"any": {"<operator>": {"<key>": "<value>"}}}`.
    pub conditions_all: Vec<Value>,
}

/// The definitions of a policy: at least one, each valid.
pub fn valid_definitions(inputs: &[DefinitionInput]) -> Result<Vec<Definition>, AppError> {
    if inputs.is_empty() {
        return Err(AppError::invalid("definitions", "a policy needs at least one definition"));
    }
    if inputs.len() > MAX_DEFINITIONS {
        return Err(AppError::invalid(
            "definitions",
            format!("a policy has at most {MAX_DEFINITIONS} definitions, not {}", inputs.len()),
        ));
    }
    inputs.iter().enumerate().map(|(i, input)| valid_definition(&format!("definitions[{i}]"), input)).collect()
}

fn valid_definition(at: &str, input: &DefinitionInput) -> Result<Definition, AppError> {
    let effect = Effect::parse(&input.effect).ok_or_else(|| {
        AppError::invalid(
            &format!("{at}.effect"),
            format!("the effect must be `allow` or `deny`, not `{}`", input.effect),
        )
    })?;
    let actions = valid_actions(&format!("{at}.actions"), &input.actions)?;
    let resources = valid_resources(&format!("{at}.resources"), &input.resources)?;
    let conditions_all = valid_conditions(&format!("{at}.conditionsAll"), &input.conditions_all)?;
    Ok(Definition { effect, actions, resources, conditions_all })
}

fn valid_actions(field: &str, actions: &[String]) -> Result<Vec<Action>, AppError> {
    if actions.is_empty() {
        return Err(AppError::invalid(field, "a definition needs at least one action"));
    }
    let mut seen = BTreeSet::new();
    let mut valid = Vec::with_capacity(actions.len());
    for (i, action) in actions.iter().enumerate() {
        let parsed = Action::parse(action).ok_or_else(|| {
            AppError::invalid(
                &format!("{field}[{i}]"),
                format!("`{action}` is not an action; use one of {}", Action::SPELLINGS.join(", ")),
            )
        })?;
        if !seen.insert(parsed) {
            return Err(AppError::invalid(&format!("{field}[{i}]"), format!("`{action}` is listed more than once")));
        }
        valid.push(parsed);
    }
    Ok(valid)
}

fn valid_resources(field: &str, resources: &[String]) -> Result<Vec<String>, AppError> {
    if resources.is_empty() {
        return Err(AppError::invalid(field, "a definition needs at least one resource path pattern"));
    }
    if resources.len() > MAX_RESOURCES {
        return Err(AppError::invalid(field, format!("a definition has at most {MAX_RESOURCES} resources")));
    }
    let mut seen = BTreeSet::new();
    for (i, resource) in resources.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if let Some(message) = path_pattern(resource) {
            return Err(AppError::invalid(&at, message));
        }
        if !seen.insert(resource.as_str()) {
            return Err(AppError::invalid(&at, format!("`{resource}` is listed more than once")));
        }
    }
    Ok(resources.to_vec())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn definition(conditions: Vec<Value>) -> DefinitionInput {
        DefinitionInput {
            effect: "allow".into(),
            actions: vec!["view".into()],
            resources: vec!["/workspaces/*/channels/**".into()],
            conditions_all: conditions,
        }
    }

    fn refused(input: DefinitionInput) -> (String, String) {
        let error = valid_definitions(&[input]).unwrap_err();
        error.violations[0].clone()
    }

    #[test]
    fn every_operator_reads_its_values_at_write_time() {
        let ok = [
            json!({"any": {"stringEquals": {"request.channel": "sms"}}}),
            json!({"all": {"stringLike": {"path": "/a/*"}, "numericLessThan": {"size": "10.5"}}}),
            json!({"all": {"bool": {"mfa": "true"}, "ipAddress": {"ip": "10.0.0.0/8"}}}),
            json!({"any": {"ipAddress": {"ip": "2001:db8::1"}, "dateBefore": {"at": "2026-01-01T00:00:00Z"}}}),
        ];
        let valid = valid_definitions(&[definition(ok.to_vec())]).unwrap();
        assert_eq!(valid[0].conditions_all.len(), 4);
        let cases = [
            (
                json!({"any": {"ANY_ADDITIONAL_PROPERTY": {}}}),
                "definitions[0].conditionsAll[0].any.ANY_ADDITIONAL_PROPERTY",
            ),
            (json!({"some": {"bool": {"k": "true"}}}), "definitions[0].conditionsAll[0].some"),
            (json!({"any": {}, "all": {}}), "definitions[0].conditionsAll[0]"),
            (json!({"any": {}}), "definitions[0].conditionsAll[0].any"),
            (json!({"any": {"numericEquals": {"n": "ten"}}}), "definitions[0].conditionsAll[0].any.numericEquals.n"),
            (json!({"any": {"numericEquals": {"n": 10}}}), "definitions[0].conditionsAll[0].any.numericEquals.n"),
            (json!({"any": {"stringEquals": {"k": null}}}), "definitions[0].conditionsAll[0].any.stringEquals.k"),
            (json!({"any": {"bool": {"k": "yes"}}}), "definitions[0].conditionsAll[0].any.bool.k"),
            (json!({"any": {"ipAddress": {"k": "10.0.0.0/33"}}}), "definitions[0].conditionsAll[0].any.ipAddress.k"),
            (json!({"any": {"dateAfter": {"k": "yesterday"}}}), "definitions[0].conditionsAll[0].any.dateAfter.k"),
            (json!("text"), "definitions[0].conditionsAll[0]"),
        ];
        for (condition, field) in cases {
            assert_eq!(refused(definition(vec![condition.clone()])).0, field, "{condition}");
        }
    }

    #[test]
    fn effects_actions_and_resources_are_checked_by_field() {
        let mut bad = definition(vec![]);
        bad.effect = "ALLOW".into();
        assert_eq!(refused(bad).0, "definitions[0].effect");
        let mut bad = definition(vec![]);
        bad.actions = vec!["view".into(), "read".into()];
        assert_eq!(refused(bad).0, "definitions[0].actions[1]");
        let mut bad = definition(vec![]);
        bad.actions = vec![];
        assert_eq!(refused(bad).0, "definitions[0].actions");
        let mut bad = definition(vec![]);
        bad.resources = vec![];
        assert_eq!(refused(bad).0, "definitions[0].resources");
        let mut bad = definition(vec![]);
        bad.resources = vec!["/a".into(), "/a".into()];
        assert_eq!(refused(bad).0, "definitions[0].resources[1]");
        assert_eq!(valid_definitions(&[]).unwrap_err().violations[0].0, "definitions");
    }
}
