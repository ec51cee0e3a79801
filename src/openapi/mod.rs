//! The OpenAPI 3.1 document of the JSON API, served at `GET /openapi.json`. It is made once
//! at start from the route table (the method table's `google.api.http` bindings, resolved
//! against the request messages) and the descriptors' comments and options, so it says
//! what the transcoder does: no path, parameter or schema is written here. What is written
//! here is the envelope: the info, the two credential forms and the error answers (the
//! `google.rpc.Status` body of api-reference A.3).

mod schema;

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, ServiceDescriptor};
use serde_json::{Map, Value, json};

use crate::body::{ResponseBody, full};
use crate::methods::ResourcePart;
use crate::transcode::routes::{BodyRule, Route, RouteTable};
use schema::{Comments, Direction, Schemas};

/// The document as JSON bytes: every request answers the same shared buffer.
#[derive(Clone, Debug)]
pub struct Document {
    json: Bytes,
}

impl Document {
    pub fn new(routes: &RouteTable) -> Document {
        // A `Value` always serializes: its keys are strings.
        let json = serde_json::to_vec(&document(routes)).unwrap_or_default();
        Document { json: Bytes::from(json) }
    }

    pub fn response(&self) -> Response<ResponseBody> {
        let mut response = Response::new(full(self.json.clone()));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }
}

/// The error answers of api-reference A.3, by HTTP status. There is no 412: like
/// grpc-gateway, iamd answers FAILED_PRECONDITION with 400 (`transcode::status`).
const ERRORS: [(u16, &str, &str); 8] = [
    (
        400,
        "BadRequest",
        "The request is not valid: a field, a query parameter or the body (INVALID_ARGUMENT, FAILED_PRECONDITION, \
         OUT_OF_RANGE).",
    ),
    (401, "Unauthenticated", "No credential, or one that is not valid (UNAUTHENTICATED)."),
    (403, "PermissionDenied", "The caller is not allowed this action on this resource (PERMISSION_DENIED)."),
    (404, "NotFound", "The object does not exist, or the caller may not see it (NOT_FOUND)."),
    (409, "Conflict", "The object exists already, or changed meanwhile (ALREADY_EXISTS, ABORTED)."),
    (413, "PayloadTooLarge", "The request body is over the server's size limit."),
    (415, "UnsupportedMediaType", "The request body's content type is not one the server reads as JSON."),
    (429, "ResourceExhausted", "A limit was reached (RESOURCE_EXHAUSTED)."),
];

fn document(routes: &RouteTable) -> Value {
    let conventions: HashMap<String, _> = routes
        .routes()
        .iter()
        .map(|route| (route.api.descriptor.parent_service().package_name().to_owned(), route.api.json))
        .collect();
    let mut schemas = Schemas::new(conventions);
    let ids = OperationIds::of(routes);
    let mut paths: BTreeMap<String, BTreeMap<&'static str, Value>> = BTreeMap::new();
    let mut tags: BTreeMap<String, Value> = BTreeMap::new();
    for route in routes.routes() {
        // OpenAPI 3.1 has no place for a custom HTTP method.
        let Some(method) = path_item_key(&route.method) else { continue };
        let service = route.api.descriptor.parent_service();
        if !tags.contains_key(service.full_name()) {
            tags.insert(service.full_name().to_owned(), tag(service, schemas.comments()));
        }
        let (path, operation) = operation(route, &ids, &mut schemas);
        paths.entry(path).or_default().insert(method, operation);
    }
    let mut components = schemas.into_components();
    components.insert("google.rpc.Status".into(), status_schema());
    let responses: Map<String, Value> = ERRORS
        .iter()
        .map(|(_, name, description)| ((*name).to_owned(), error_answer(description)))
        .chain([("Error".to_owned(), error_answer("The server failed, or is not ready yet (5xx)."))])
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "iamd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The JSON form of every iamd method. Each one is also served as native gRPC and \
                gRPC-web on the same port, at `x-iamd-grpc-method`.",
        },
        "tags": tags.into_values().collect::<Vec<_>>(),
        "security": [{ "Bearer": [] }, { "AccessKey": [] }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "Bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <token>`: an iamd API token (the bootstrap token \
                        included), or a JWT of the configured OIDC issuer.",
                },
                "AccessKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Authorization: AccessKey <token>`: the same iamd API tokens, spelled as \
                        the Bird Accounts API does.",
                },
            },
            "schemas": components,
            "responses": responses,
        },
    })
}

/// A service as a tag, described by its comment.
fn tag(service: &ServiceDescriptor, comments: &mut Comments) -> Value {
    let mut tag = json!({ "name": service.full_name() });
    if let Some(text) = comments.of(&service.parent_file(), service.path()) {
        tag["description"] = text.into();
    }
    tag
}

fn path_item_key(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "get",
        Method::PUT => "put",
        Method::POST => "post",
        Method::DELETE => "delete",
        Method::PATCH => "patch",
        Method::HEAD => "head",
        Method::OPTIONS => "options",
        Method::TRACE => "trace",
        _ => return None,
    })
}

/// `Service_Method`, with the package first where two packages have a service of that name
/// (`iamd.iam.v2.PolicyService_CreatePolicy`), and `_2`, `_3` for additional bindings.
struct OperationIds {
    ambiguous: HashSet<String>,
}

impl OperationIds {
    fn of(routes: &RouteTable) -> OperationIds {
        let mut packages: HashMap<String, HashSet<String>> = HashMap::new();
        for route in routes.routes() {
            let service = route.api.descriptor.parent_service();
            packages.entry(service.name().to_owned()).or_default().insert(service.package_name().to_owned());
        }
        let ambiguous = packages.into_iter().filter(|(_, packages)| packages.len() > 1).map(|(name, _)| name).collect();
        OperationIds { ambiguous }
    }

    fn of_route(&self, route: &Route) -> String {
        let method = &route.api.descriptor;
        let service = method.parent_service();
        let mut id = if self.ambiguous.contains(service.name()) {
            format!("{}_{}", service.full_name(), method.name())
        } else {
            format!("{}_{}", service.name(), method.name())
        };
        if route.binding > 0 {
            id.push_str(&format!("_{}", route.binding + 1));
        }
        id
    }
}

fn operation(route: &Route, ids: &OperationIds, schemas: &mut Schemas) -> (String, Value) {
    let api = &route.api;
    let method = &api.descriptor;
    let (path, mut parameters) = path_and_parameters(route, schemas);
    parameters.extend(query_parameters(route, schemas));
    let comment = schemas.comments().of(&method.parent_file(), method.path()).unwrap_or_default();

    let mut operation = Map::new();
    operation.insert("operationId".into(), ids.of_route(route).into());
    operation.insert("tags".into(), json!([method.parent_service().full_name()]));
    if let Some(summary) = first_sentence(&comment) {
        operation.insert("summary".into(), summary.into());
    }
    let mut description = vec![comment];
    match api.permission() {
        Some(permission) => {
            let resource = json_resource(&permission.resource.parts);
            description.push(format!("Needs `{}` on `{resource}`.", permission.action));
            operation.insert("x-iamd-permission".into(), json!({ "action": permission.action, "resource": resource }));
        }
        None => {
            description.push("Open: no credential is needed.".into());
            operation.insert("security".into(), json!([]));
        }
    }
    if api.json.json_body_required && !matches!(route.body, BodyRule::None) {
        description.push("The body must be `application/json`; any other content type is 400.".into());
    }
    description.retain(|part| !part.is_empty());
    operation.insert("description".into(), description.join("\n\n").into());
    operation.insert("x-iamd-grpc-method".into(), api.path.as_ref().into());
    if !parameters.is_empty() {
        operation.insert("parameters".into(), parameters.into());
    }
    if let Some(body) = request_body(route, schemas) {
        operation.insert("requestBody".into(), body);
    }
    operation.insert("responses".into(), responses(route, schemas));
    if api.deprecated {
        operation.insert("deprecated".into(), true.into());
    }
    (path, Value::Object(operation))
}

/// The comment's first sentence, for a one-line summary.
fn first_sentence(comment: &str) -> Option<String> {
    let flat = comment.split_whitespace().collect::<Vec<_>>().join(" ");
    let end = flat.find(". ").map_or(flat.len(), |at| at + 1);
    let sentence = flat.get(..end)?.trim();
    (!sentence.is_empty()).then(|| sentence.to_owned())
}

/// `accounts:organizations:{organization_id}` with the placeholders under their JSON names,
/// as a client knows the fields.
fn json_resource(parts: &[ResourcePart]) -> String {
    parts
        .iter()
        .map(|part| match part {
            ResourcePart::Literal(text) => text.clone(),
            ResourcePart::Field(path) => format!("{{{}}}", json_path(path)),
        })
        .collect()
}

fn json_path(fields: &[FieldDescriptor]) -> String {
    fields.iter().map(FieldDescriptor::json_name).collect::<Vec<_>>().join(".")
}

/// The template as an OpenAPI path, its variables under their JSON names
/// (`/admin/v1/orgs/{org_id}/policies/domain` → `/admin/v1/orgs/{orgId}/policies/domain`),
/// and a parameter per variable. A verb stays a literal suffix (`/v1/authz:check`). A
/// variable with a pattern (`{name=shelves/*}`) becomes `{name}`, its value a string the
/// pattern's segments match.
fn path_and_parameters(route: &Route, schemas: &mut Schemas) -> (String, Vec<Value>) {
    let text = route.template.as_str();
    let mut path = String::with_capacity(text.len());
    let mut parameters = Vec::new();
    let mut fields = route.path_fields.iter();
    let mut rest = text;
    // The template parsed, so its braces pair up and never nest.
    while let (Some(open), Some(close)) = (rest.find('{'), rest.find('}')) {
        path.push_str(rest.get(..open).unwrap_or_default());
        let variable = rest.get(open + 1..close).unwrap_or_default();
        rest = rest.get(close + 1..).unwrap_or_default();
        let Some(resolved) = fields.next() else { continue };
        let Some(leaf) = resolved.last() else { continue };
        let name = json_path(resolved);
        path.push_str(&format!("{{{name}}}"));
        let mut parameter_schema = schemas.kind(&leaf.kind(), Direction::Input);
        match variable.split_once('=') {
            Some((_, segments)) => parameter_schema["pattern"] = segments_pattern(segments).into(),
            None if leaf.kind() == Kind::String => parameter_schema["minLength"] = 1.into(),
            None => {}
        }
        let mut parameter = json!({ "name": name, "in": "path", "required": true, "schema": parameter_schema });
        if let Some(text) = schemas.comments().of(&leaf.parent_file(), leaf.path()) {
            parameter["description"] = text.into();
        }
        parameters.push(parameter);
    }
    path.push_str(rest);
    (path, parameters)
}

/// A regular expression for the segments of a variable's pattern: `shelves/*` →
/// `^shelves/[^/]+$`.
fn segments_pattern(segments: &str) -> String {
    let parts: Vec<String> = segments
        .split('/')
        .map(|segment| match segment {
            "*" => "[^/]+".to_owned(),
            "**" => ".*".to_owned(),
            literal => literal
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") })
                .collect(),
        })
        .collect();
    format!("^{}$", parts.join("/"))
}

/// The request fields the query may set, as grpc-gateway lists them: every field the path
/// and body leave, through singular messages (`note.stars`), under JSON names. Maps,
/// repeated messages and JSON-valued types are left out, and a message met again on the way
/// down is not entered again.
fn query_parameters(route: &Route, schemas: &mut Schemas) -> Vec<Value> {
    let mut parameters = Vec::new();
    if !matches!(route.body, BodyRule::Whole) {
        query_fields(route, &route.input(), &mut Vec::new(), &mut parameters, schemas);
    }
    parameters
}

fn query_fields(
    route: &Route,
    message: &MessageDescriptor,
    chain: &mut Vec<FieldDescriptor>,
    parameters: &mut Vec<Value>,
    schemas: &mut Schemas,
) {
    for field in message.fields() {
        chain.push(field.clone());
        let in_path = route.path_fields.iter().any(|path| path.as_slice() == chain.as_slice());
        let in_body = matches!(&route.body, BodyRule::Field(body) if chain.len() == 1 && *body == field);
        if !in_path && !in_body && !field.is_map() {
            match field.kind() {
                Kind::Message(inner) if !crate::wkt::is_one_scalar(inner.full_name()) => {
                    let entered = inner == route.input()
                        || chain.iter().any(|f| matches!(f.kind(), Kind::Message(m) if m == inner) && *f != field);
                    if !field.is_list() && !entered && !inner.full_name().starts_with("google.protobuf.") {
                        query_fields(route, &inner, chain, parameters, schemas);
                    }
                }
                _ => parameters.push(query_parameter(chain, &field, schemas)),
            }
        }
        chain.pop();
    }
}

fn query_parameter(chain: &[FieldDescriptor], field: &FieldDescriptor, schemas: &mut Schemas) -> Value {
    let mut schema = schemas.field(field, Direction::Input);
    let mut parameter = json!({ "name": json_path(chain), "in": "query" });
    if let Some(object) = schema.as_object_mut() {
        // Said of the parameter, where viewers show it.
        for key in ["description", "deprecated"] {
            if let Some(value) = object.remove(key) {
                parameter[key] = value;
            }
        }
    }
    parameter["schema"] = schema;
    parameter
}

fn request_body(route: &Route, schemas: &mut Schemas) -> Option<Value> {
    let schema = match &route.body {
        BodyRule::None => return None,
        BodyRule::Whole => {
            // The path's fields are the path's: grpc-gateway leaves them out of the body.
            let in_path: Vec<FieldDescriptor> = route
                .path_fields
                .iter()
                .filter(|path| path.len() == 1)
                .filter_map(|path| path.first().cloned())
                .collect();
            if in_path.is_empty() {
                schemas.message(&route.input(), Direction::Input)
            } else {
                schemas.object_without(&route.input(), Direction::Input, &in_path)
            }
        }
        BodyRule::Field(field) => schemas.field(field, Direction::Input),
    };
    Some(json!({
        "required": route.api.json.json_body_required,
        "content": { "application/json": { "schema": schema } },
    }))
}

fn responses(route: &Route, schemas: &mut Schemas) -> Value {
    let success = route.success();
    let reason = success.canonical_reason().unwrap_or("Success");
    // A 204 answer has no body and no content type.
    let answer = if success == StatusCode::NO_CONTENT {
        json!({ "description": reason })
    } else {
        let schema = match &route.response_body {
            Some(field) => schemas.field(field, Direction::Output),
            None => schemas.message(&route.api.descriptor.output(), Direction::Output),
        };
        json!({ "description": reason, "content": { "application/json": { "schema": schema } } })
    };
    let mut responses = Map::new();
    responses.insert(success.as_str().to_owned(), answer);
    let guarded = route.api.permission().is_some();
    // Only a body the transcoder reads can have a content type it refuses, and the AuthZEN
    // surface refuses those with 400.
    let reads_any_json = !matches!(route.body, BodyRule::None) && !route.api.json.json_body_required;
    for (status, name, _) in ERRORS {
        let applies = match status {
            401 | 403 => guarded,
            415 => reads_any_json,
            _ => true,
        };
        if applies {
            responses.insert(status.to_string(), json!({ "$ref": format!("#/components/responses/{name}") }));
        }
    }
    responses.insert("default".into(), json!({ "$ref": "#/components/responses/Error" }));
    Value::Object(responses)
}

fn error_answer(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/google.rpc.Status" } } },
    })
}

/// The error body every failure has (`transcode::status::status_json`).
fn status_schema() -> Value {
    json!({
        "type": "object",
        "description": "A failure: its gRPC code, a readable message and typed details, such as \
            `google.rpc.ErrorInfo` (a stable `reason`) and `google.rpc.BadRequest` (the fields at fault).",
        "properties": {
            "code": { "type": "integer", "format": "int32", "description": "The gRPC status code." },
            "message": { "type": "string" },
            "details": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": { "@type": { "type": "string" } },
                    "required": ["@type"],
                },
            },
        },
        "required": ["code", "message", "details"],
    })
}

#[cfg(test)]
mod tests;
