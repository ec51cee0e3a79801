//! `conditionsAll` as policies store it (A.5), for organization definitions and IAM v2
//! statements alike: every element must hold, `all` of its tests or `any`. Stored in the
//! shape of the wire, its operators spelled by the engine's one table.

use std::collections::BTreeMap;

use iamd_engine as engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A test's operator (`stringEquals`, `boolIfExists`, …); its values were read when they
/// were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operator(pub engine::Operator);

impl Operator {
    pub fn parse(text: &str) -> Option<Operator> {
        engine::Operator::from_name(text).map(Operator)
    }

    pub fn as_str(self) -> &'static str {
        self.0.name()
    }

    /// Every spelling, for messages.
    pub fn spellings() -> String {
        engine::Operator::ALL.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Operator, D::Error> {
        let text = String::deserialize(deserializer)?;
        Operator::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not an operator")))
    }
}

/// Per operator, the context keys it tests and the value each is compared with.
pub type Tests = BTreeMap<Operator, BTreeMap<String, String>>;

/// One element of `conditionsAll`: every test holds (`all`) or one does (`any`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    All(Tests),
    Any(Tests),
}

/// The engine's form of stored conditions.
pub fn engine_conditions(conditions: &[Condition]) -> Vec<engine::Condition> {
    conditions
        .iter()
        .map(|condition| {
            let (quantifier, tests) = match condition {
                Condition::All(tests) => (engine::Quantifier::All, tests),
                Condition::Any(tests) => (engine::Quantifier::Any, tests),
            };
            let tests = tests
                .iter()
                .flat_map(|(operator, keys)| {
                    keys.iter().map(|(key, value)| engine::Test {
                        operator: operator.0,
                        key: key.clone(),
                        value: value.clone(),
                    })
                })
                .collect();
            engine::Condition { quantifier, tests }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_stored_in_the_shape_of_the_wire() {
        let mut tests = Tests::new();
        let equals = Operator::parse("stringEquals").unwrap();
        tests.insert(equals, [("request.channel".to_string(), "sms".to_string())].into());
        let json = serde_json::to_value(Condition::Any(tests.clone())).unwrap();
        assert_eq!(json, serde_json::json!({"any": {"stringEquals": {"request.channel": "sms"}}}));
        assert_eq!(serde_json::from_value::<Condition>(json).unwrap(), Condition::Any(tests));
        let if_exists = serde_json::json!({"all": {"boolIfExists": {"action.soft": "true"}}});
        assert!(serde_json::from_value::<Condition>(if_exists).is_ok());
        assert!(serde_json::from_value::<Condition>(serde_json::json!({"all": {"nope": {"k": "v"}}})).is_err());
    }
}
