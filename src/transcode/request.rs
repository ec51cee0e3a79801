//! Builds the JSON form of a request message from the three places REST puts it: the body,
//! the path variables and the query string, as http.proto assigns them. The result goes
//! through the method's pbjson deserializer, so values are written here the way the proto3
//! JSON mapping expects them (64-bit integers as strings, enums by name).

use percent_encoding::percent_decode_str;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};

use super::routes::{BodyRule, Route};
use super::template::Binding;

/// Why a request cannot become a message; always the client's fault (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The field or parameter at fault, as the client named it.
    pub field: Option<String>,
    pub message: String,
}

impl RequestError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError { field: Some(field.into()), message: message.into() }
    }
}

/// Merges body, path and query into one JSON object. Path values win over the body, as in
/// grpc-gateway; a query parameter may set only fields that neither the path nor the body
/// covers.
pub fn build(route: &Route, bindings: &[Binding], query: Option<&str>, body: &[u8]) -> Result<Value, RequestError> {
    let mut root = match &route.body {
        BodyRule::Whole => match parse_body(body)? {
            None => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => {
                return Err(RequestError { field: None, message: "the request body must be a JSON object".into() });
            }
        },
        BodyRule::Field(field) => {
            let mut map = Map::new();
            if let Some(value) = parse_body(body)? {
                map.insert(field.json_name().to_owned(), value);
            }
            map
        }
        BodyRule::None => Map::new(),
    };
    if route.method == http::Method::PATCH && matches!(route.body, BodyRule::Whole) {
        infer_update_mask(route, &mut root);
    }

    for (binding, fields) in bindings.iter().zip(&route.path_fields) {
        let Some((leaf, parents)) = fields.split_last() else { continue };
        let value =
            scalar_json(leaf, &binding.value).map_err(|m| RequestError::new(binding.field_path.join("."), m))?;
        set_nested(&mut root, parents, leaf, value).map_err(|m| RequestError::new(binding.field_path.join("."), m))?;
    }

    if let Some(query) = query.filter(|q| !q.is_empty()) {
        apply_query(route, &mut root, query)?;
    }
    Ok(Value::Object(root))
}

/// A PATCH names what it changes by the fields its body holds, as grpc-gateway fills in
/// `update_mask`: so `"definitions": []` is a change (refused as empty) and an absent field
/// is kept, which a proto3 repeated field alone cannot tell apart. A mask the client sent
/// stands; keys the message does not define stay out of it, for the codec to refuse by name.
fn infer_update_mask(route: &Route, root: &mut Map<String, Value>) {
    let message = route.input();
    let in_path = |field: &FieldDescriptor| route.path_fields.iter().any(|path| path.first() == Some(field));
    let Some(mask) = message.get_field_by_name("update_mask") else { return };
    let is_mask = matches!(mask.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.FieldMask");
    if !is_mask || root.contains_key(mask.json_name()) || root.contains_key(mask.name()) {
        return;
    }
    let paths: Vec<String> = root
        .keys()
        .filter_map(|key| find_field(&message, key))
        .filter(|field| !in_path(field))
        .map(|field| field.json_name().to_owned())
        .collect();
    if !paths.is_empty() {
        root.insert(mask.json_name().to_owned(), Value::String(paths.join(",")));
    }
}

/// Drops the body's fields that `message` does not define, at every depth: what
/// `application/json+lax` asks for on a surface that otherwise refuses them (Chef's lenient
/// marshaler). Well-known types keep their own JSON forms untouched.
pub fn drop_unknown_fields(value: &mut Value, message: &MessageDescriptor) {
    let Value::Object(map) = value else { return };
    if message.full_name().starts_with("google.protobuf.") {
        return;
    }
    map.retain(|name, _| find_field(message, name).is_some());
    for (name, child) in map.iter_mut() {
        let Some(field) = find_field(message, name) else { continue };
        let Kind::Message(inner) = field.kind() else { continue };
        match child {
            Value::Array(items) if field.is_list() => {
                items.iter_mut().for_each(|item| drop_unknown_fields(item, &inner))
            }
            Value::Object(entries) if field.is_map() => {
                if let Kind::Message(values) = inner.map_entry_value_field().kind() {
                    entries.values_mut().for_each(|entry| drop_unknown_fields(entry, &values));
                }
            }
            _ => drop_unknown_fields(child, &inner),
        }
    }
}

/// A `null` in a list, where proto3 JSON has no "unset" to read it as: refused naming the
/// element (`definitions[0].resources[0]`), which the codec's own error cannot. A `null`
/// field is left to the codec; well-known types keep their own JSON forms (a
/// `google.protobuf.Struct` may hold nulls).
pub fn refuse_null_elements(value: &Value, message: &MessageDescriptor) -> Result<(), RequestError> {
    null_elements(value, message, &mut String::new())
}

fn null_elements(value: &Value, message: &MessageDescriptor, at: &mut String) -> Result<(), RequestError> {
    let Value::Object(map) = value else { return Ok(()) };
    if message.full_name().starts_with("google.protobuf.") {
        return Ok(());
    }
    for (name, child) in map {
        let Some(field) = find_field(message, name) else { continue };
        let mark = at.len();
        if !at.is_empty() {
            at.push('.');
        }
        at.push_str(name);
        let inner = match field.kind() {
            Kind::Message(inner) => Some(inner),
            _ => None,
        };
        match child {
            Value::Array(items) if field.is_list() => {
                for (i, item) in items.iter().enumerate() {
                    let element = format!("{at}[{i}]");
                    if item.is_null() {
                        return Err(RequestError::new(element.clone(), format!("`{element}` cannot be null")));
                    }
                    if let Some(inner) = &inner {
                        null_elements(item, inner, &mut element.clone())?;
                    }
                }
            }
            Value::Object(_) if field.is_map() => {}
            _ => {
                if let Some(inner) = &inner {
                    null_elements(child, inner, at)?;
                }
            }
        }
        at.truncate(mark);
    }
    Ok(())
}

/// Refuses JSON nested deeper than `max` arrays and objects before anything parses it: a
/// parser's own recursion limit would answer a deep body with a stack of work first, and a
/// depth iamd's messages never need is a client's mistake or an attack. One pass over the
/// bytes, skipping strings; malformed JSON is left for the parser to name.
pub fn check_depth(body: &[u8], max: usize) -> Result<(), RequestError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(RequestError {
                        field: None,
                        message: format!("the request body nests arrays and objects deeper than {max} levels"),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn parse_body(body: &[u8]) -> Result<Option<Value>, RequestError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| RequestError { field: None, message: format!("the request body is not valid JSON: {e}") })
}

fn apply_query(route: &Route, root: &mut Map<String, Value>, query: &str) -> Result<(), RequestError> {
    let mut seen: Vec<String> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(raw_key).map_err(|m| RequestError::new(raw_key, m))?;
        let fields = match resolve_query_field(route, &key) {
            Ok(fields) => fields,
            // Lenient surfaces skip unknown parameters before looking at their values.
            Err(QueryField::Unknown) if route.ignore_unknown() => continue,
            Err(QueryField::Unknown) if matches!(route.body, BodyRule::Whole) => {
                let message =
                    format!("query parameter `{key}` is not accepted: this method reads every field from the body");
                return Err(RequestError::new(key, message));
            }
            Err(QueryField::Unknown) => {
                return Err(RequestError::new(key.clone(), format!("unknown query parameter `{key}`")));
            }
            Err(QueryField::Invalid(message)) => return Err(RequestError::new(key, message)),
        };
        let value = form_decode(raw_value).map_err(|m| query_error(&key, m))?;
        let Some((leaf, parents)) = fields.split_last() else { continue };
        let json = scalar_json(leaf, &value).map_err(|m| query_error(&key, m))?;
        if leaf.is_list() {
            push_nested(root, parents, leaf, json).map_err(|m| query_error(&key, m))?;
        } else {
            let canonical = fields.iter().map(|f| f.name()).collect::<Vec<_>>().join(".");
            if seen.contains(&canonical) {
                return Err(RequestError::new(key.clone(), format!("query parameter `{key}` is given more than once")));
            }
            seen.push(canonical);
            set_nested(root, parents, leaf, json).map_err(|m| query_error(&key, m))?;
        }
    }
    Ok(())
}

/// A bad value of query parameter `key`; the message names the parameter, as the
/// client may not see the field violation.
fn query_error(key: &str, message: String) -> RequestError {
    RequestError::new(key, format!("query parameter `{key}`: {message}"))
}

enum QueryField {
    Unknown,
    Invalid(String),
}

/// Resolves `a.b` (proto or JSON names) to fields that the query may set.
fn resolve_query_field(route: &Route, key: &str) -> Result<Vec<FieldDescriptor>, QueryField> {
    if matches!(route.body, BodyRule::Whole) {
        // Every field is covered by the body; nothing is left for the query.
        return Err(QueryField::Unknown);
    }
    let mut message: MessageDescriptor = route.input();
    let mut fields = Vec::new();
    let names: Vec<&str> = key.split('.').collect();
    for (i, name) in names.iter().enumerate() {
        let field = find_field(&message, name).ok_or(QueryField::Unknown)?;
        let last = i + 1 == names.len();
        fields.push(field.clone());
        if field.is_map() {
            return Err(QueryField::Invalid(format!("`{key}` is a map, which the query cannot set")));
        }
        match field.kind() {
            Kind::Message(inner) if !last && !is_scalar_like(&inner) => {
                if field.is_list() {
                    return Err(QueryField::Invalid(format!("`{key}` steps through a repeated message")));
                }
                message = inner;
            }
            Kind::Message(inner) if last && !is_scalar_like(&inner) => {
                return Err(QueryField::Invalid(format!("`{key}` is a message; set its fields as `{key}.<field>`")));
            }
            _ if !last => return Err(QueryField::Unknown),
            _ => {}
        }
    }
    let covered_by_path = route.path_fields.iter().any(|path| is_prefix(path, &fields) || is_prefix(&fields, path));
    let covered_by_body = match &route.body {
        BodyRule::Field(body) => fields.first().is_some_and(|f| f == body),
        _ => false,
    };
    if covered_by_path || covered_by_body {
        return Err(QueryField::Invalid(format!(
            "query parameter `{key}` names a field the {} already sets",
            if covered_by_path { "path" } else { "body" }
        )));
    }
    Ok(fields)
}

fn is_prefix(a: &[FieldDescriptor], b: &[FieldDescriptor]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn find_field(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message.get_field_by_name(name).or_else(|| message.get_field_by_json_name(name))
}

/// Well-known types whose JSON form is a string or a scalar, settable from one value.
fn is_scalar_like(message: &MessageDescriptor) -> bool {
    let name = message.full_name();
    crate::wkt::is_one_scalar(name)
        || matches!(name, "google.protobuf.Value" | "google.protobuf.Struct" | "google.protobuf.ListValue")
}

/// The JSON value pbjson expects for one textual value of a field.
fn scalar_json(field: &FieldDescriptor, text: &str) -> Result<Value, String> {
    match field.kind() {
        Kind::String => Ok(Value::String(text.to_owned())),
        Kind::Bytes => Ok(Value::String(text.to_owned())),
        Kind::Bool => match text {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not a boolean (true or false)")),
        },
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            text.parse::<i32>().map(Value::from).map_err(|_| format!("`{text}` is not a 32-bit integer"))
        }
        Kind::Uint32 | Kind::Fixed32 => {
            text.parse::<u32>().map(Value::from).map_err(|_| format!("`{text}` is not an unsigned 32-bit integer"))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => text
            .parse::<i64>()
            .map(|_| Value::String(text.to_owned()))
            .map_err(|_| format!("`{text}` is not a 64-bit integer")),
        Kind::Uint64 | Kind::Fixed64 => text
            .parse::<u64>()
            .map(|_| Value::String(text.to_owned()))
            .map_err(|_| format!("`{text}` is not an unsigned 64-bit integer")),
        Kind::Double | Kind::Float => match text {
            "NaN" | "Infinity" | "-Infinity" => Ok(Value::String(text.to_owned())),
            _ => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("`{text}` is not a number")),
        },
        Kind::Enum(e) => {
            if e.get_value_by_name(text).is_some() {
                Ok(Value::String(text.to_owned()))
            } else if let Some(v) = text.parse::<i32>().ok().and_then(|n| e.get_value(n)) {
                Ok(Value::String(v.name().to_owned()))
            } else {
                Err(format!("`{text}` is not a value of {}", e.name()))
            }
        }
        Kind::Message(m) => match m.full_name() {
            "google.protobuf.Value" | "google.protobuf.Struct" | "google.protobuf.ListValue" => {
                serde_json::from_str(text).map_err(|e| format!("`{text}` is not JSON: {e}"))
            }
            "google.protobuf.BoolValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue" => match m.get_field_by_name("value") {
                Some(inner) => scalar_json(&inner, text),
                None => Err(format!("{} has no value field", m.full_name())),
            },
            // Timestamp, Duration, FieldMask, StringValue and BytesValue are strings in JSON.
            _ => Ok(Value::String(text.to_owned())),
        },
    }
}

fn child<'a>(map: &'a mut Map<String, Value>, field: &FieldDescriptor) -> Result<&'a mut Map<String, Value>, String> {
    let entry = map.entry(field.json_name().to_owned()).or_insert_with(|| Value::Object(Map::new()));
    match entry {
        Value::Object(inner) => Ok(inner),
        _ => Err(format!("`{}` is set both as a value and as a message", field.name())),
    }
}

fn walk<'a>(
    root: &'a mut Map<String, Value>,
    parents: &[FieldDescriptor],
) -> Result<&'a mut Map<String, Value>, String> {
    let mut map = root;
    for parent in parents {
        // The body may name a field by its proto name; fold it into the JSON name so the
        // two spellings do not become two keys.
        if let Some(value) = map.remove(parent.name()) {
            map.insert(parent.json_name().to_owned(), value);
        }
        map = child(map, parent)?;
    }
    Ok(map)
}

fn set_nested(
    root: &mut Map<String, Value>,
    parents: &[FieldDescriptor],
    leaf: &FieldDescriptor,
    value: Value,
) -> Result<(), String> {
    let map = walk(root, parents)?;
    map.remove(leaf.name());
    map.insert(leaf.json_name().to_owned(), value);
    Ok(())
}

fn push_nested(
    root: &mut Map<String, Value>,
    parents: &[FieldDescriptor],
    leaf: &FieldDescriptor,
    value: Value,
) -> Result<(), String> {
    let map = walk(root, parents)?;
    match map.entry(leaf.json_name().to_owned()).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(items) => {
            items.push(value);
            Ok(())
        }
        _ => Err(format!("`{}` is set both as a list and as a value", leaf.name())),
    }
}

/// The proto3 JSON of a field at its zero value.
pub fn zero_json(field: &FieldDescriptor) -> Value {
    if field.is_list() {
        return Value::Array(Vec::new());
    }
    if field.is_map() {
        return Value::Object(Map::new());
    }
    match field.kind() {
        Kind::Message(_) => Value::Object(Map::new()),
        Kind::Bool => Value::Bool(false),
        Kind::String | Kind::Bytes => Value::String(String::new()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => Value::String("0".into()),
        Kind::Enum(e) => e.default_value().name().into(),
        _ => Value::from(0),
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn form_decode(text: &str) -> Result<String, String> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("`{text}` is not valid UTF-8 once decoded"))
}

#[cfg(test)]
mod depth_tests {
    use super::check_depth;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn refuses_nesting_beyond_the_limit_only() {
        assert!(check_depth(nested(64).as_bytes(), 64).is_ok());
        let error = check_depth(nested(65).as_bytes(), 64).unwrap_err();
        assert!(error.message.contains("deeper than 64 levels"), "{}", error.message);
        let objects = format!("{}1{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(check_depth(objects.as_bytes(), 64).is_err());
        // Siblings do not add up: depth is how deep, not how many.
        let wide = format!("[{}]", vec!["{}"; 1000].join(","));
        assert!(check_depth(wide.as_bytes(), 2).is_ok());
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let text = format!(r#"{{"name":"{}","quoted":"\"[[[\\"}}"#, "[".repeat(100));
        assert!(check_depth(text.as_bytes(), 1).is_ok(), "{text}");
        // An escaped quote does not end the string.
        assert!(check_depth(br#"["\"[[[["]"#, 1).is_ok());
    }
}
