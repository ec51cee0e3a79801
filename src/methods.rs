//! The table of every method the server answers, read once at start from the embedded
//! descriptor sets: per gRPC method its `google.api.http` bindings, the action and resource
//! of its `(iamd.method)` option, its JSON success status, its package's JSON conventions and
//! whether it is deprecated. The transcoder, the access log and the message framing rules
//! read it; so will authorization, the OpenAPI document and metrics. Nothing about a method
//! is written anywhere but `proto/`.
//!
//! Services outside iamd's packages that the server also answers (health, reflection) are in
//! the table too, without a rule: they are open and have no JSON form.

use std::collections::HashMap;
use std::sync::Arc;

use http::StatusCode;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use crate::pb::google::api::HttpRule;

/// One gRPC method.
#[derive(Debug)]
pub struct ApiMethod {
    /// `/package.Service/Method`, as on the wire.
    pub path: Arc<str>,
    pub descriptor: MethodDescriptor,
    /// What iamd's option says of it; `None` outside iamd's packages.
    pub rule: Option<MethodRule>,
    /// Its HTTP bindings: the `google.api.http` rule first, then its `additional_bindings`.
    pub http: Vec<HttpRule>,
    pub json: JsonConventions,
    /// The method, its service or its file is marked `deprecated`.
    pub deprecated: bool,
    /// Its position in the table: metrics keep one slot per method.
    pub index: usize,
}

impl ApiMethod {
    pub fn input(&self) -> MessageDescriptor {
        self.descriptor.input()
    }

    /// The method's request is one message, not a stream.
    pub fn takes_one_message(&self) -> bool {
        !self.descriptor.is_client_streaming()
    }

    /// The HTTP status of a successful JSON answer.
    pub fn success(&self) -> StatusCode {
        self.rule.as_ref().map_or(StatusCode::OK, |rule| rule.success)
    }

    /// What a caller must be allowed; `None` for an open method or one outside iamd's packages.
    pub fn permission(&self) -> Option<&Permission> {
        self.rule.as_ref().and_then(|rule| rule.permission.as_ref())
    }
}

/// The `(iamd.method)` option: what a caller must be allowed, on what, and how JSON answers.
#[derive(Debug)]
pub struct MethodRule {
    /// `None` for an open method (`open: true`), which anyone may call with no credential.
    pub permission: Option<Permission>,
    pub success: StatusCode,
}

/// What a caller of a guarded method must be allowed.
#[derive(Debug)]
pub struct Permission {
    /// `<surface>:<type>:<verb>`, for example `admin:domainPolicies:update`.
    pub action: String,
    pub resource: ResourceTemplate,
}

/// A resource name with `{field}` placeholders filled from the request message, such as
/// `accounts:organizations:{organization_id}`.
#[derive(Debug, Clone)]
pub struct ResourceTemplate {
    pub text: String,
    pub parts: Vec<ResourcePart>,
}

#[derive(Debug, Clone)]
pub enum ResourcePart {
    Literal(String),
    /// The path of a singular scalar field of the request, `a.b` as fields.
    Field(Vec<FieldDescriptor>),
}

/// How one API surface writes and reads JSON: its package's `(iamd.json)` option.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonConventions {
    pub emit_zero_values: bool,
    /// Unknown fields in bodies and unknown query parameters are ignored, not 400.
    pub ignore_unknown_fields: bool,
    /// A body must be `application/json` and not empty; anything else is 400 (AuthZEN).
    pub json_body_required: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{method}: {message}")]
pub struct MethodError {
    method: String,
    message: String,
}

/// Every method, in descriptor order, and by path.
#[derive(Debug, Default)]
pub struct MethodTable {
    methods: Vec<Arc<ApiMethod>>,
    /// Looked up on every call; the table is fixed at start, so a fast hash is safe.
    by_path: HashMap<Arc<str>, Arc<ApiMethod>, foldhash::fast::RandomState>,
}

impl MethodTable {
    /// The methods the server answers: iamd's own, health and reflection.
    pub fn served() -> Result<MethodTable, MethodError> {
        let pool = |bytes: &[u8], what: &str| {
            DescriptorPool::decode(bytes).map_err(|e| MethodError { method: what.into(), message: e.to_string() })
        };
        MethodTable::from_pools(&[
            pool(crate::pb::FILE_DESCRIPTOR_SET, "iamd descriptor set")?,
            pool(tonic_health::pb::FILE_DESCRIPTOR_SET, "health descriptor set")?,
            pool(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET, "reflection descriptor set")?,
            pool(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET, "reflection descriptor set")?,
        ])
    }

    /// The methods of `pools`. Every method of an `iamd.` package must carry `(iamd.method)`
    /// and every file of one its package's `(iamd.json)`.
    pub fn from_pools(pools: &[DescriptorPool]) -> Result<MethodTable, MethodError> {
        let mut table = MethodTable::default();
        for pool in pools {
            let options = Options::of(pool);
            for service in pool.services() {
                let own = service.package_name().starts_with("iamd.");
                let file_deprecated =
                    service.parent_file().file_descriptor_proto().options.as_ref().and_then(|o| o.deprecated);
                let service_deprecated = service.service_descriptor_proto().options.as_ref().and_then(|o| o.deprecated);
                for method in service.methods() {
                    let path: Arc<str> = format!("/{}/{}", service.full_name(), method.name()).into();
                    let error = |message: String| MethodError { method: method.full_name().to_owned(), message };
                    let (rule, http, json) = match (&options, own) {
                        (Some(options), true) => (
                            Some(options.rule(&method).map_err(error)?),
                            options.http(&method).map_err(error)?,
                            options.json(&service).map_err(error)?,
                        ),
                        (None, true) => return Err(error("the descriptor set defines no iamd options".into())),
                        (_, false) => (None, Vec::new(), JsonConventions::default()),
                    };
                    let method_deprecated =
                        method.method_descriptor_proto().options.as_ref().and_then(|o| o.deprecated);
                    let deprecated = [file_deprecated, service_deprecated, method_deprecated].contains(&Some(true));
                    // Two services of one name would leave one of them unreachable, whichever
                    // the router picked: refuse it at start.
                    if table.by_path.contains_key(&path) {
                        return Err(error(format!("`{path}` is defined more than once")));
                    }
                    let index = table.methods.len();
                    let entry = Arc::new(ApiMethod {
                        path: path.clone(),
                        descriptor: method,
                        rule,
                        http,
                        json,
                        deprecated,
                        index,
                    });
                    table.by_path.insert(path, entry.clone());
                    table.methods.push(entry);
                }
            }
        }
        Ok(table)
    }

    /// The method at a gRPC path.
    pub fn get(&self, path: &str) -> Option<&Arc<ApiMethod>> {
        self.by_path.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ApiMethod>> {
        self.methods.iter()
    }
}

/// The option extensions of one descriptor pool.
struct Options {
    http: prost_reflect::ExtensionDescriptor,
    rule: prost_reflect::ExtensionDescriptor,
    json: prost_reflect::ExtensionDescriptor,
}

impl Options {
    fn of(pool: &DescriptorPool) -> Option<Options> {
        Some(Options {
            http: pool.get_extension_by_name("google.api.http")?,
            rule: pool.get_extension_by_name("iamd.method")?,
            json: pool.get_extension_by_name("iamd.json")?,
        })
    }

    fn rule(&self, method: &MethodDescriptor) -> Result<MethodRule, String> {
        let options = method.options();
        if !options.has_extension(&self.rule) {
            return Err("has no (iamd.method) option".into());
        }
        let value = options.get_extension(&self.rule);
        let message = value.as_message().ok_or("(iamd.method) is not a message")?;
        let text = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned));
        let action = text("action").unwrap_or_default();
        let resource = text("resource").unwrap_or_default();
        let open = message.get_field_by_name("open").and_then(|v| v.as_bool()).unwrap_or(false);
        let permission = match (open, action.is_empty()) {
            (true, true) if resource.is_empty() => None,
            (true, _) => return Err("(iamd.method) is open and names an action or resource".into()),
            (false, true) => return Err("(iamd.method) has no action".into()),
            (false, false) => {
                Some(Permission { action, resource: ResourceTemplate::parse(&resource, &method.input())? })
            }
        };
        let status = message.get_field_by_name("success_status").and_then(|v| v.as_i32()).unwrap_or(0);
        let success = match status {
            0 => StatusCode::OK,
            n => u16::try_from(n)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .filter(StatusCode::is_success)
                .ok_or_else(|| format!("success_status {n} is not a 2xx status"))?,
        };
        Ok(MethodRule { permission, success })
    }

    fn http(&self, method: &MethodDescriptor) -> Result<Vec<HttpRule>, String> {
        let options = method.options();
        if !options.has_extension(&self.http) {
            return Ok(Vec::new());
        }
        let rule: HttpRule = options
            .get_extension(&self.http)
            .as_message()
            .ok_or("google.api.http is not a message")?
            .transcode_to()
            .map_err(|e| format!("google.api.http: {e}"))?;
        let mut bindings = vec![HttpRule { additional_bindings: Vec::new(), ..rule.clone() }];
        for additional in rule.additional_bindings {
            if !additional.additional_bindings.is_empty() {
                return Err("additional_bindings may nest only one level".into());
            }
            bindings.push(additional);
        }
        Ok(bindings)
    }

    fn json(&self, service: &prost_reflect::ServiceDescriptor) -> Result<JsonConventions, String> {
        let options = service.parent_file().options();
        if !options.has_extension(&self.json) {
            return Err(format!("{} has no (iamd.json) option", service.parent_file().name()));
        }
        let value = options.get_extension(&self.json);
        let message = value.as_message().ok_or("(iamd.json) is not a message")?;
        let flag = |name: &str| message.get_field_by_name(name).and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(JsonConventions {
            emit_zero_values: flag("emit_zero_values"),
            ignore_unknown_fields: flag("ignore_unknown_fields"),
            json_body_required: flag("json_body_required"),
        })
    }
}

impl ResourceTemplate {
    /// Parses `a:b:{field.path}`; every placeholder must name a singular scalar field of
    /// `input`.
    pub fn parse(text: &str, input: &MessageDescriptor) -> Result<ResourceTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(ResourcePart::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .map(|i| open + i)
                .ok_or_else(|| format!("resource `{text}` has an unclosed `{{`"))?;
            let path = &rest[open + 1..close];
            parts.push(ResourcePart::Field(field_path(input, path).map_err(|e| format!("resource `{text}`: {e}"))?));
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("resource `{text}` has an unopened `}}`"));
        }
        if !rest.is_empty() {
            parts.push(ResourcePart::Literal(rest.to_owned()));
        }
        Ok(ResourceTemplate { text: text.to_owned(), parts })
    }

    /// The resource of one request, its placeholders read off the encoded message (a field
    /// it does not hold is its default); `None` when the wire format cannot read it.
    pub fn fill_from_message(&self, message: &[u8]) -> Option<String> {
        self.fill(|path| field_text(message, path).ok())
    }

    /// Whether the resource is the same for every request (no placeholder).
    pub fn is_fixed(&self) -> bool {
        self.parts.iter().all(|part| matches!(part, ResourcePart::Literal(_)))
    }

    /// The resource of one request: each placeholder filled with `value` of its field path,
    /// with `%`, `:` and `*` percent-encoded so that a value cannot reach into the resource
    /// patterns of other objects (`a:*` never covers an id `a:b`, which no object has).
    /// `None` when a field has no value.
    pub fn fill(&self, mut value: impl FnMut(&[FieldDescriptor]) -> Option<String>) -> Option<String> {
        let mut resource = String::with_capacity(self.text.len());
        for part in &self.parts {
            match part {
                ResourcePart::Literal(text) => resource.push_str(text),
                ResourcePart::Field(path) => {
                    let value = value(path)?;
                    let mut rest = value.as_str();
                    while let Some(at) = rest.find(['%', ':', '*']) {
                        resource.push_str(&rest[..at]);
                        resource.push_str(match rest.as_bytes()[at] {
                            b'%' => "%25",
                            b':' => "%3A",
                            _ => "%2A",
                        });
                        rest = &rest[at + 1..];
                    }
                    resource.push_str(rest);
                }
            }
        }
        Some(resource)
    }
}

/// Resolves `a.b.c` against a message: every step but the last a singular message, the last
/// a singular scalar, as path variables and resource placeholders require.
pub fn field_path(input: &MessageDescriptor, path: &str) -> Result<Vec<FieldDescriptor>, String> {
    let names: Vec<&str> = path.split('.').collect();
    let mut message = input.clone();
    let mut fields = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field =
            message.get_field_by_name(name).ok_or_else(|| format!("field `{path}` is not in {}", input.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("field `{path}` must not be repeated"));
        }
        let last = i + 1 == names.len();
        match (field.kind(), last) {
            (Kind::Message(inner), false) => message = inner,
            (Kind::Message(_), true) => return Err(format!("field `{path}` must be a scalar")),
            (_, false) => return Err(format!("field `{path}` steps through a scalar")),
            (_, true) => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

/// A message the wire format cannot read.
struct Malformed;

/// The text of a singular scalar field (`a.b` as fields) of an encoded message, its default
/// when absent; the last occurrence wins, as protobuf merges singular fields. Read straight
/// off the wire: a placeholder is usually one string of a small message, and decoding the
/// whole message into a dynamic one would cost more than the rest of the check.
fn field_text(message: &[u8], path: &[FieldDescriptor]) -> Result<String, Malformed> {
    let Some((field, rest)) = path.split_first() else { return Err(Malformed) };
    let number = u64::from(field.number());
    let mut found: Option<Wire<'_>> = None;
    let mut input = message;
    while !input.is_empty() {
        let key = varint(&mut input)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut input)?),
            1 => {
                take(&mut input, 8)?;
                Wire::Fixed
            }
            2 => {
                let length = usize::try_from(varint(&mut input)?).map_err(|_| Malformed)?;
                Wire::Bytes(take(&mut input, length)?)
            }
            5 => {
                take(&mut input, 4)?;
                Wire::Fixed
            }
            _ => return Err(Malformed),
        };
        if key >> 3 == number {
            found = Some(value);
        }
    }
    if !rest.is_empty() {
        return match found {
            Some(Wire::Bytes(inner)) => field_text(inner, rest),
            None => field_text(&[], rest),
            Some(_) => Err(Malformed),
        };
    }
    use prost_reflect::Kind::*;
    Ok(match (field.kind(), found) {
        (String, Some(Wire::Bytes(text))) => std::str::from_utf8(text).map_err(|_| Malformed)?.to_owned(),
        (String, None) => std::string::String::new(),
        (Bool, Some(Wire::Varint(n))) => (n != 0).to_string(),
        (Bool, None) => "false".into(),
        (Int32 | Enum(_), Some(Wire::Varint(n))) => (n as i32).to_string(),
        (Int64, Some(Wire::Varint(n))) => (n as i64).to_string(),
        (Uint32, Some(Wire::Varint(n))) => (n as u32).to_string(),
        (Uint64, Some(Wire::Varint(n))) => n.to_string(),
        (Int32 | Int64 | Uint32 | Uint64 | Enum(_), None) => "0".into(),
        _ => return Err(Malformed),
    })
}

/// One field's value as the wire holds it.
enum Wire<'a> {
    Varint(u64),
    /// A fixed32 or fixed64, which no placeholder reads.
    Fixed,
    Bytes(&'a [u8]),
}

fn varint(input: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(Malformed)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if input.len() < n {
        return Err(Malformed);
    }
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_method_is_in_the_table_with_its_rule() {
        let table = MethodTable::served().unwrap();
        let get = table.get("/iamd.accounts.v1.OrganizationService/GetOrganization").unwrap();
        let rule = get.permission().unwrap();
        assert_eq!(rule.action, "accounts:organizations:get");
        assert_eq!(rule.resource.text, "accounts:organizations:{organization_id}");
        assert!(matches!(&rule.resource.parts[1], ResourcePart::Field(path) if path[0].name() == "organization_id"));
        assert_eq!(get.http.len(), 1);
        assert!(get.json.emit_zero_values && !get.json.ignore_unknown_fields);
        assert!(!get.deprecated);
        let create = table.get("/iamd.accounts.v1.OrganizationService/CreateOrganization").unwrap();
        assert_eq!(create.success(), StatusCode::CREATED);
        let deprecated = table.get("/iamd.admin.v1.AdminService/GetOrgIAMPolicy").unwrap();
        assert!(deprecated.deprecated && deprecated.json.ignore_unknown_fields);
        // Served, open, with no JSON form.
        let health = table.get("/grpc.health.v1.Health/Check").unwrap();
        assert!(health.rule.is_none() && health.http.is_empty() && health.takes_one_message());
        let reflection = table.get("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").unwrap();
        assert!(!reflection.takes_one_message());
        let iamd = table.iter().filter(|m| m.path.starts_with("/iamd.")).count();
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        assert_eq!(iamd, pool.services().map(|s| s.methods().count()).sum::<usize>());
        assert!(table.iter().filter(|m| m.path.starts_with("/iamd.")).all(|m| m.rule.is_some()));
    }

    #[test]
    fn a_method_defined_twice_is_refused() {
        let pool = || DescriptorPool::decode(tonic_health::pb::FILE_DESCRIPTOR_SET).unwrap();
        let error = MethodTable::from_pools(&[pool(), pool()]).unwrap_err();
        assert!(error.to_string().contains("`/grpc.health.v1.Health/Check` is defined more than once"), "{error}");
    }

    #[test]
    fn resource_placeholders_must_name_scalar_fields() {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let input = pool.get_message_by_name("iamd.accounts.v1.GetOrganizationRequest").unwrap();
        assert!(ResourceTemplate::parse("a:{organization_id}:b", &input).is_ok());
        for bad in ["a:{nope}", "a:{organization_id", "a:}b", "a:{}"] {
            assert!(ResourceTemplate::parse(bad, &input).is_err(), "{bad}");
        }
    }

    fn fill(path: &str, message: &impl prost::Message) -> Option<String> {
        let table = MethodTable::served().unwrap();
        let rule = table.get(path).unwrap().permission().unwrap();
        let bytes = message.encode_to_vec();
        rule.resource.fill_from_message(&bytes)
    }

    #[test]
    fn placeholders_are_read_off_the_wire_and_escaped() {
        use crate::pb::iamd::accounts::v1 as accounts;
        let get = accounts::GetPolicyRequest { organization_id: "o:1*".into(), policy_id: "p".into() };
        assert_eq!(
            fill("/iamd.accounts.v1.PolicyService/GetPolicy", &get).as_deref(),
            Some("accounts:organizations:o%3A1%2A:policies:p")
        );
        let empty = accounts::GetPolicyRequest::default();
        assert_eq!(
            fill("/iamd.accounts.v1.PolicyService/GetPolicy", &empty).as_deref(),
            Some("accounts:organizations::policies:")
        );
    }

    #[test]
    fn a_message_the_wire_format_cannot_read_is_malformed() {
        let table = MethodTable::served().unwrap();
        let rule = table.get("/iamd.accounts.v1.PolicyService/GetPolicy").unwrap().permission().unwrap();
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x0a], &[0xff; 11], &[0x0b, 0x00], &[0x0a, 0x02, 0xff, 0xfe]] {
            assert!(rule.resource.fill_from_message(bad).is_none(), "{bad:?}");
        }
    }
}
