//! `conditionsAll` as a client writes it (A.5), checked at write time for organization
//! definitions and IAM v2 statements alike: values are strings that the numeric, bool, date
//! and CIDR operators must be able to read, so a stored condition is one the engine
//! evaluates. Every refusal names the field at fault, such as
//! `definitions[0].conditionsAll[1].any.numericLessThan.size`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::AppError;
use crate::kinds::condition::{Condition, Operator, Tests};

/// Bounds that keep one statement quick to evaluate.
const MAX_CONDITIONS: usize = 20;

/// The conditions at `field` (`…conditionsAll`), each valid.
pub fn valid_conditions(field: &str, conditions: &[Value]) -> Result<Vec<Condition>, AppError> {
    if conditions.len() > MAX_CONDITIONS {
        return Err(AppError::invalid(field, format!("at most {MAX_CONDITIONS} conditions, not {}", conditions.len())));
    }
    conditions.iter().enumerate().map(|(j, condition)| valid_condition(&format!("{field}[{j}]"), condition)).collect()
}

fn valid_condition(at: &str, condition: &Value) -> Result<Condition, AppError> {
    let shape = "a condition is `{\"all\" or \"any\": {\"<operator>\": {\"<context key>\": \"<value>\"}}}`";
    let Some(object) = condition.as_object().filter(|o| o.len() == 1) else {
        return Err(AppError::invalid(at, shape));
    };
    let Some((quantifier, tests)) = object.iter().next() else { return Err(AppError::invalid(at, shape)) };
    let at = format!("{at}.{quantifier}");
    let tests = match quantifier.as_str() {
        "all" | "any" => valid_tests(&at, tests)?,
        other => {
            return Err(AppError::invalid(&at, format!("`{other}` is not `all` or `any`; {shape}")));
        }
    };
    Ok(if quantifier == "all" { Condition::All(tests) } else { Condition::Any(tests) })
}

fn valid_tests(at: &str, tests: &Value) -> Result<Tests, AppError> {
    let Some(operators) = tests.as_object().filter(|o| !o.is_empty()) else {
        return Err(AppError::invalid(at, "a condition needs at least one operator, such as `stringEquals`"));
    };
    let mut valid = Tests::new();
    for (name, keys) in operators {
        let at = format!("{at}.{name}");
        let operator = Operator::parse(name).ok_or_else(|| {
            AppError::invalid(&at, format!("`{name}` is not an operator; use one of {}", Operator::spellings()))
        })?;
        let Some(keys) = keys.as_object().filter(|k| !k.is_empty()) else {
            return Err(AppError::invalid(
                &at,
                format!("`{name}` needs at least one `\"<context key>\": \"<value>\"`"),
            ));
        };
        let mut values = BTreeMap::new();
        for (key, value) in keys {
            let at = format!("{at}.{key}");
            if key.is_empty() {
                return Err(AppError::invalid(&at, "a context key cannot be empty"));
            }
            let Some(text) = value.as_str() else {
                return Err(AppError::invalid(&at, format!("the value of `{key}` must be a string, not `{value}`")));
            };
            if let Some(message) = readable(operator, text) {
                return Err(AppError::invalid(&at, message));
            }
            values.insert(key.clone(), text.to_owned());
        }
        valid.insert(operator, values);
    }
    Ok(valid)
}

/// Why `operator` cannot read `value`, if it cannot: the engine's reading, so a stored value
/// is one it evaluates.
fn readable(operator: Operator, value: &str) -> Option<String> {
    iamd_engine::readable(operator.0, value)
}
