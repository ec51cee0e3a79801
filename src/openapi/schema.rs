//! JSON Schemas of protobuf messages as iamd's pbjson code writes and reads them, one
//! surface's `(iamd.json)` conventions at a time: field names from the descriptor's
//! `json_name`, 64-bit integers as strings, enums by name, the well-known types in their
//! proto3 JSON forms. A message is a component, once per direction, since what a surface
//! reads (unknown fields refused or not, numbers taken as strings) and what it writes (zero
//! values always there or never) differ.

use std::collections::{BTreeMap, HashMap};

use prost_reflect::{EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use crate::methods::JsonConventions;

/// Which way a message travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// A request the server reads.
    Input,
    /// An answer the server writes.
    Output,
}

/// The component schemas made so far, and what making them needs.
pub struct Schemas {
    /// Each package's `(iamd.json)`, as its methods carry it.
    conventions: HashMap<String, JsonConventions>,
    comments: Comments,
    components: BTreeMap<String, Value>,
}

impl Schemas {
    pub fn new(conventions: HashMap<String, JsonConventions>) -> Schemas {
        Schemas { conventions, comments: Comments::default(), components: BTreeMap::new() }
    }

    pub fn comments(&mut self) -> &mut Comments {
        &mut self.comments
    }

    /// The component schemas, by name.
    pub fn into_components(self) -> BTreeMap<String, Value> {
        self.components
    }

    /// A message: its proto3 JSON form for a well-known type, else a `$ref` to its component.
    pub fn message(&mut self, message: &MessageDescriptor, direction: Direction) -> Value {
        if let Some(known) = self.well_known(message, direction) {
            return known;
        }
        let name = component_name(message, direction);
        if !self.components.contains_key(&name) {
            // Held before the fields are read, so a message that contains itself refers to
            // the component being made instead of recursing.
            self.components.insert(name.clone(), Value::Null);
            let object = self.object(message, direction);
            self.components.insert(name.clone(), object);
        }
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// The object schema of a message's fields; `skip` leaves some out (those a path sets).
    pub fn object_without(
        &mut self,
        message: &MessageDescriptor,
        direction: Direction,
        skip: &[FieldDescriptor],
    ) -> Value {
        let mut object = self.object(message, direction);
        if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
            for field in skip {
                properties.remove(field.json_name());
            }
        }
        object
    }

    fn object(&mut self, message: &MessageDescriptor, direction: Direction) -> Value {
        let conventions = self.conventions.get(message.package_name()).copied().unwrap_or_default();
        let omit_empty = message.parent_pool().get_extension_by_name("iamd.omit_empty");
        let mut properties = Map::new();
        let mut required = Vec::new();
        for field in message.fields() {
            let mut schema = self.field(&field, direction);
            if let Some(oneof) = field.containing_oneof().filter(|o| !o.is_synthetic()) {
                let members: Vec<String> = oneof.fields().map(|f| format!("`{}`", f.json_name())).collect();
                append_description(&mut schema, &format!("At most one of {}.", members.join(", ")));
            }
            // pbjson writes every field without presence when the surface emits zero values,
            // except the ones marked to be left out while empty.
            let marked_omit_empty = omit_empty.as_ref().is_some_and(|ext| {
                field.options().has_extension(ext) && field.options().get_extension(ext).as_bool() == Some(true)
            });
            if direction == Direction::Output
                && conventions.emit_zero_values
                && !field.supports_presence()
                && !marked_omit_empty
            {
                required.push(Value::String(field.json_name().to_owned()));
            }
            properties.insert(field.json_name().to_owned(), schema);
        }
        let mut object = Map::new();
        object.insert("type".into(), "object".into());
        if let Some(text) = self.comments.of(&message.parent_file(), message.path()) {
            object.insert("description".into(), text.into());
        }
        object.insert("properties".into(), Value::Object(properties));
        if !required.is_empty() {
            object.insert("required".into(), Value::Array(required));
        }
        if direction == Direction::Input && !conventions.ignore_unknown_fields {
            object.insert("additionalProperties".into(), false.into());
        }
        if message.descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true) {
            object.insert("deprecated".into(), true.into());
        }
        Value::Object(object)
    }

    /// One field: its value, a list of them or a map, with its comment.
    pub fn field(&mut self, field: &FieldDescriptor, direction: Direction) -> Value {
        let mut schema = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => {
                    let key = entry.map_entry_key_field();
                    let mut map = json!({
                        "type": "object",
                        "additionalProperties": self.kind(&entry.map_entry_value_field().kind(), direction),
                    });
                    if let Some(names) = map_key_names(&key.kind()) {
                        map["propertyNames"] = names;
                    }
                    map
                }
                _ => json!({ "type": "object" }),
            }
        } else if field.is_list() {
            json!({ "type": "array", "items": self.kind(&field.kind(), direction) })
        } else {
            self.kind(&field.kind(), direction)
        };
        if let Some(text) = self.comments.of(&field.parent_file(), field.path()) {
            append_description(&mut schema, &text);
        }
        if field.field_descriptor_proto().options.as_ref().and_then(|o| o.deprecated) == Some(true) {
            schema["deprecated"] = true.into();
        }
        schema
    }

    /// A single value of `kind`.
    pub fn kind(&mut self, kind: &Kind, direction: Direction) -> Value {
        match kind {
            Kind::Double => float("double"),
            Kind::Float => float("float"),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({ "type": "integer", "format": "int32", "minimum": i32::MIN, "maximum": i32::MAX })
            }
            Kind::Uint32 | Kind::Fixed32 => {
                json!({ "type": "integer", "format": "uint32", "minimum": 0, "maximum": u32::MAX })
            }
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => int64(direction, true),
            Kind::Uint64 | Kind::Fixed64 => int64(direction, false),
            Kind::Bool => json!({ "type": "boolean" }),
            Kind::String => json!({ "type": "string" }),
            Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
            Kind::Enum(e) => self.enumeration(e, direction),
            Kind::Message(m) => self.message(m, direction),
        }
    }

    fn enumeration(&mut self, e: &EnumDescriptor, direction: Direction) -> Value {
        let names = e.values().map(|v| Value::String(v.name().to_owned()));
        let mut schema = match direction {
            Direction::Output => json!({ "type": "string", "enum": names.collect::<Vec<_>>() }),
            // pbjson reads an enum by name or by number.
            Direction::Input => {
                let numbers = e.values().map(|v| Value::from(v.number()));
                json!({ "type": ["string", "integer"], "enum": names.chain(numbers).collect::<Vec<_>>() })
            }
        };
        if let Some(text) = self.comments.of(&e.parent_file(), e.path()) {
            schema["description"] = text.into();
        }
        schema
    }

    /// The proto3 JSON forms of the well-known types; `None` for any other message.
    fn well_known(&mut self, message: &MessageDescriptor, direction: Direction) -> Option<Value> {
        let schema = match message.full_name() {
            "google.protobuf.Timestamp" => json!({ "type": "string", "format": "date-time" }),
            "google.protobuf.Duration" => json!({
                "type": "string",
                "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
                "description": "Seconds with an `s` suffix, such as `1.5s`.",
            }),
            "google.protobuf.FieldMask" => json!({
                "type": "string",
                "description": "Comma-separated lowerCamelCase field paths, such as `name,policyIds`.",
            }),
            "google.protobuf.Struct" => json!({ "type": "object" }),
            "google.protobuf.ListValue" => json!({ "type": "array" }),
            "google.protobuf.Value" => json!({}),
            "google.protobuf.Empty" => json!({ "type": "object" }),
            "google.protobuf.Any" => json!({
                "type": "object",
                "properties": { "@type": { "type": "string" } },
                "required": ["@type"],
            }),
            // The wrappers are their one `value` field, in that field's form.
            name if crate::wkt::is_wrapper(name) => {
                let value = message.get_field_by_name("value")?;
                self.kind(&value.kind(), direction)
            }
            _ => return None,
        };
        Some(schema)
    }
}

/// `iamd.iam.v2.Statement` for what the server writes, `iamd.iam.v2.Statement-input` for
/// what it reads (a `-` is in no proto name, so the two never meet another message's).
fn component_name(message: &MessageDescriptor, direction: Direction) -> String {
    match direction {
        Direction::Output => message.full_name().to_owned(),
        Direction::Input => format!("{}-input", message.full_name()),
    }
}

/// A 64-bit integer: written as a decimal string, read as one or as a JSON number.
fn int64(direction: Direction, signed: bool) -> Value {
    let (pattern, format) = if signed { ("^-?[0-9]+$", "int64") } else { ("^[0-9]+$", "uint64") };
    let (minimum, maximum) =
        if signed { (Value::from(i64::MIN), Value::from(i64::MAX)) } else { (0.into(), u64::MAX.into()) };
    match direction {
        Direction::Output => json!({ "type": "string", "format": format, "pattern": pattern }),
        Direction::Input => json!({
            "type": ["string", "integer"],
            "format": format,
            "pattern": pattern,
            "minimum": minimum,
            "maximum": maximum,
        }),
    }
}

/// A number, or one of the strings proto3 JSON spells the non-finite values with.
fn float(format: &str) -> Value {
    json!({ "anyOf": [
        { "type": "number", "format": format },
        { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] },
    ] })
}

/// JSON object keys are strings; a map with other keys spells them as those.
fn map_key_names(key: &Kind) -> Option<Value> {
    match key {
        Kind::String => None,
        Kind::Bool => Some(json!({ "enum": ["true", "false"] })),
        Kind::Uint32 | Kind::Fixed32 | Kind::Uint64 | Kind::Fixed64 => Some(json!({ "pattern": "^[0-9]+$" })),
        _ => Some(json!({ "pattern": "^-?[0-9]+$" })),
    }
}

fn append_description(schema: &mut Value, text: &str) {
    let Some(object) = schema.as_object_mut() else { return };
    let joined = match object.get("description").and_then(Value::as_str) {
        Some(existing) => format!("{text}\n\n{existing}"),
        None => text.to_owned(),
    };
    object.insert("description".into(), joined.into());
}

/// The leading comments of a file's elements, by their source path, read once per file
/// from the descriptors' source info (build.rs keeps it).
#[derive(Default)]
pub struct Comments {
    by_file: HashMap<String, HashMap<Vec<i32>, String>>,
}

impl Comments {
    /// The comment above the element at `path` of `file`, without the comment markers' spaces.
    pub fn of(&mut self, file: &FileDescriptor, path: &[i32]) -> Option<String> {
        let comments = self.by_file.entry(file.name().to_owned()).or_insert_with(|| {
            let Some(info) = &file.file_descriptor_proto().source_code_info else { return HashMap::new() };
            info.location
                .iter()
                .filter_map(|location| {
                    let text = tidy(location.leading_comments.as_deref()?);
                    (!text.is_empty()).then(|| (location.path.clone(), text))
                })
                .collect()
        });
        comments.get(path).cloned()
    }
}

/// `" Returns one.\n More.\n"` as `"Returns one.\nMore."`.
fn tidy(raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end()).collect();
    lines.join("\n").trim().to_owned()
}
