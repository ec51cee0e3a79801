//! `conditionsAll` between its wire form (`google.protobuf.Struct`s) and the use cases' JSON
//! and stored forms, for organization definitions and IAM v2 statements alike.

use pbjson_types::Struct;

use crate::kinds::condition::Condition;

/// A `Struct` as the JSON object it is on the wire, which the use cases read conditions from.
pub(super) fn object(fields: Struct) -> serde_json::Value {
    serde_json::Value::Object(fields.fields.into_iter().map(|(key, value)| (key, json(value))).collect())
}

fn json(value: pbjson_types::Value) -> serde_json::Value {
    use pbjson_types::value::Kind;
    use serde_json::Value;
    match value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::StructValue(fields)) => object(fields),
        Some(Kind::ListValue(list)) => Value::Array(list.values.into_iter().map(json).collect()),
    }
}

/// A stored condition in its wire form, `{"all"|"any": {"<operator>": {"<key>": "<value>"}}}`.
pub(super) fn condition(condition: &Condition) -> Struct {
    let (quantifier, tests) = match condition {
        Condition::All(tests) => ("all", tests),
        Condition::Any(tests) => ("any", tests),
    };
    let operators: Struct = tests
        .iter()
        .map(|(operator, keys)| {
            let keys: Struct = keys.iter().map(|(key, value)| (key.clone(), value.clone().into())).collect();
            (operator.as_str().to_owned(), keys.into())
        })
        .collect();
    [(quantifier.to_owned(), operators.into())].into_iter().collect()
}
