//! The REST route table, read at start-up from the `google.api.http` and `(iamd.method)`
//! options of the embedded descriptor set. There is no other list of routes.

use http::{Method, StatusCode};
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor};

use super::codec::MethodCodec;
use super::template::{Binding, Template};
use crate::pb::google::api::{HttpRule, http_rule::Pattern};

/// How the request body maps onto the request message.
#[derive(Debug, Clone)]
pub enum BodyRule {
    /// No body; every field not bound by the path may come from the query.
    None,
    /// `body: "*"`: the whole body is the message; no query parameters.
    Whole,
    /// `body: "field"`: the body is that top-level field.
    Field(FieldDescriptor),
}

/// One HTTP binding of one gRPC method.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    pub template: Template,
    pub body: BodyRule,
    /// The response field answered instead of the whole message.
    pub response_body: Option<FieldDescriptor>,
    /// `/package.Service/Method`.
    pub grpc_path: String,
    /// The same, parsed once for the in-process call.
    pub grpc_uri: http::Uri,
    pub input: MessageDescriptor,
    /// The resolved fields of each template variable, in template order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    pub success: StatusCode,
    pub codec: MethodCodec,
    /// The surface's `(iamd.json).ignore_unknown_fields`: unknown query parameters too.
    pub ignore_unknown: bool,
}

pub enum Lookup<'a> {
    Found(&'a Route, Vec<Binding>),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

#[derive(Debug, thiserror::Error)]
#[error("{method}: {message}")]
pub struct RouteError {
    method: String,
    message: String,
}

pub struct RouteTable {
    /// Most specific template first, so the first path-and-method match wins.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn from_pool(pool: &DescriptorPool) -> Result<RouteTable, RouteError> {
        let http = pool.get_extension_by_name("google.api.http");
        let rule_ext = pool.get_extension_by_name("iamd.method");
        let json_ext = pool.get_extension_by_name("iamd.json");
        let (Some(http), Some(rule_ext), Some(json_ext)) = (http, rule_ext, json_ext) else {
            return Err(RouteError {
                method: "descriptor set".into(),
                message: "google.api.http, iamd.method or iamd.json is not defined".into(),
            });
        };
        let mut routes = Vec::new();
        for service in pool.services().filter(|s| s.package_name().starts_with("iamd.")) {
            let ignore_unknown = service
                .parent_file()
                .options()
                .get_extension(&json_ext)
                .as_message()
                .and_then(|m| m.get_field_by_name("ignore_unknown_fields"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            for method in service.methods() {
                let error = |message: String| RouteError { method: method.full_name().to_owned(), message };
                let options = method.options();
                if !options.has_extension(&rule_ext) {
                    return Err(error("has no (iamd.method) option".into()));
                }
                let success = method_success(&options.get_extension(&rule_ext)).map_err(&error)?;
                if !options.has_extension(&http) {
                    continue;
                }
                let rule: HttpRule = options
                    .get_extension(&http)
                    .as_message()
                    .ok_or_else(|| error("google.api.http is not a message".into()))?
                    .transcode_to()
                    .map_err(|e| error(format!("google.api.http: {e}")))?;
                let grpc_path = format!("/{}/{}", service.full_name(), method.name());
                let codec =
                    crate::pb::method_codec(&grpc_path).ok_or_else(|| error("has no generated JSON codec".into()))?;
                let base = RouteBase { method: &method, success, codec, grpc_path, ignore_unknown };
                let mut bindings = vec![rule.clone()];
                for additional in &rule.additional_bindings {
                    if !additional.additional_bindings.is_empty() {
                        return Err(error("additional_bindings may nest only one level".into()));
                    }
                    bindings.push(additional.clone());
                }
                for binding in bindings {
                    routes.push(base.route(&binding).map_err(&error)?);
                }
            }
        }
        routes.sort_by(|a, b| b.template.specificity_cmp(&a.template));
        Ok(RouteTable { routes })
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        // Routes of the request's method first: that is every successful request, and it
        // matches templates against a fraction of the table.
        let found = self
            .routes
            .iter()
            .filter(|route| route.method == *method)
            .find_map(|route| route.template.matches(path).map(|bindings| (route, bindings)));
        if let Some((route, bindings)) = found {
            return Lookup::Found(route, bindings);
        }
        let mut allowed = Vec::new();
        for route in &self.routes {
            if !allowed.contains(&route.method) && route.template.matches(path).is_some() {
                allowed.push(route.method.clone());
            }
        }
        if allowed.is_empty() { Lookup::NotFound } else { Lookup::MethodNotAllowed(allowed) }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

fn method_success(rule: &prost_reflect::Value) -> Result<StatusCode, String> {
    let status =
        rule.as_message().and_then(|m| m.get_field_by_name("success_status")).and_then(|v| v.as_i32()).unwrap_or(0);
    if status == 0 {
        return Ok(StatusCode::OK);
    }
    u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(StatusCode::is_success)
        .ok_or_else(|| format!("success_status {status} is not a 2xx status"))
}

struct RouteBase<'a> {
    method: &'a MethodDescriptor,
    success: StatusCode,
    codec: MethodCodec,
    grpc_path: String,
    ignore_unknown: bool,
}

impl RouteBase<'_> {
    fn route(&self, rule: &HttpRule) -> Result<Route, String> {
        let (method, path) = match &rule.pattern {
            Some(Pattern::Get(p)) => (Method::GET, p),
            Some(Pattern::Put(p)) => (Method::PUT, p),
            Some(Pattern::Post(p)) => (Method::POST, p),
            Some(Pattern::Delete(p)) => (Method::DELETE, p),
            Some(Pattern::Patch(p)) => (Method::PATCH, p),
            Some(Pattern::Custom(custom)) => (
                Method::from_bytes(custom.kind.as_bytes())
                    .map_err(|e| format!("custom kind `{}`: {e}", custom.kind))?,
                &custom.path,
            ),
            None => return Err("google.api.http has no pattern".into()),
        };
        let template = Template::parse(path).map_err(|e| e.to_string())?;
        let input = self.method.input();
        let path_fields =
            template.variables().map(|names| resolve_path_field(&input, names)).collect::<Result<Vec<_>, _>>()?;
        let body = match rule.body.as_str() {
            "" => BodyRule::None,
            "*" => BodyRule::Whole,
            name => {
                let field = input
                    .get_field_by_name(name)
                    .ok_or_else(|| format!("body field `{name}` is not in {}", input.full_name()))?;
                if field.is_list() || field.is_map() {
                    return Err(format!("body field `{name}` must not be repeated"));
                }
                BodyRule::Field(field)
            }
        };
        let response_body = match rule.response_body.as_str() {
            "" => None,
            name => {
                let output = self.method.output();
                let field = output
                    .get_field_by_name(name)
                    .ok_or_else(|| format!("response_body `{name}` is not in {}", output.full_name()))?;
                Some(field)
            }
        };
        let grpc_uri = self.grpc_path.parse().map_err(|e| format!("`{}` is not a URI path: {e}", self.grpc_path))?;
        Ok(Route {
            method,
            template,
            body,
            response_body,
            grpc_uri,
            grpc_path: self.grpc_path.clone(),
            input,
            path_fields,
            success: self.success,
            codec: self.codec,
            ignore_unknown: self.ignore_unknown,
        })
    }
}

/// Resolves `a.b.c` against the input message: every step but the last is a singular
/// message, the last a singular scalar, as http.proto requires of path variables.
fn resolve_path_field(input: &MessageDescriptor, names: &[String]) -> Result<Vec<FieldDescriptor>, String> {
    let mut message = input.clone();
    let mut fields = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = message
            .get_field_by_name(name)
            .ok_or_else(|| format!("path variable `{}` is not in {}", names.join("."), input.full_name()))?;
        if field.is_list() || field.is_map() {
            return Err(format!("path variable `{}` must not be repeated", names.join(".")));
        }
        let last = i + 1 == names.len();
        match (field.kind(), last) {
            (Kind::Message(inner), false) => message = inner,
            (Kind::Message(_), true) => return Err(format!("path variable `{}` must be a scalar", names.join("."))),
            (_, false) => return Err(format!("path variable `{}` steps through a scalar", names.join("."))),
            (_, true) => {}
        }
        fields.push(field);
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        RouteTable::from_pool(&pool).unwrap()
    }

    #[test]
    fn every_annotated_method_has_a_route() {
        let table = table();
        let pool = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let methods: usize =
            pool.services().filter(|s| s.package_name().starts_with("iamd.")).map(|s| s.methods().count()).sum();
        assert_eq!(table.routes().len(), methods);
        assert!(table.routes().iter().any(|r| r.grpc_path == "/iamd.admin.v1.AdminService/GetOrgIAMPolicy"));
    }

    #[test]
    fn success_status_and_response_body_come_from_the_proto() {
        let table = table();
        let create = table.routes().iter().find(|r| r.grpc_path.ends_with("/CreateOrganization")).unwrap();
        assert_eq!(create.success, StatusCode::CREATED);
        assert_eq!(create.response_body.as_ref().map(FieldDescriptor::json_name), Some("organization"));
        let delete = table.routes().iter().find(|r| r.grpc_path.ends_with("/DeleteOrganization")).unwrap();
        assert_eq!(delete.success, StatusCode::NO_CONTENT);
    }

    #[test]
    fn lookup_finds_method_not_allowed_and_not_found() {
        let table = table();
        match table.lookup(&Method::GET, "/admin/v1/orgs/abc/policies/domain") {
            Lookup::Found(route, bindings) => {
                assert!(route.grpc_path.ends_with("/GetCustomDomainPolicy"));
                assert_eq!(bindings[0].value, "abc");
            }
            _ => panic!("expected a route"),
        }
        match table.lookup(&Method::PATCH, "/admin/v1/policies/domain") {
            Lookup::MethodNotAllowed(methods) => {
                assert!(methods.contains(&Method::GET) && methods.contains(&Method::PUT));
                assert_eq!(methods.len(), 2);
            }
            _ => panic!("expected 405"),
        }
        assert!(matches!(table.lookup(&Method::GET, "/admin/v1/nothing"), Lookup::NotFound));
    }

    #[test]
    fn a_path_ending_in_a_verb_goes_to_a_template_with_that_verb_first() {
        let pool = DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_pool(&pool).unwrap();
        let found = |method: Method, path: &str| match table.lookup(&method, path) {
            Lookup::Found(route, bindings) => {
                let name = route.grpc_path.rsplit('/').next().unwrap_or_default().to_owned();
                (name, bindings.into_iter().map(|b| b.value).collect::<Vec<_>>())
            }
            _ => panic!("{method} {path}: no route"),
        };
        let of = |name: &str, values: &[&str]| (name.to_owned(), values.iter().map(|v| v.to_string()).collect());
        // `/v1/echo/{id}` matches too, and is the more literal; the verb decides.
        assert_eq!(found(Method::GET, "/v1/echo/jason:verb"), of("EchoAnyVerb", &["echo/jason"]));
        assert_eq!(found(Method::GET, "/v1/files/a/b:verb"), of("EchoAnyVerb", &["files/a/b"]));
        assert_eq!(found(Method::GET, "/v1/echo/jason"), of("Echo", &["jason"]));
        // A verb no GET template has is data.
        assert_eq!(found(Method::GET, "/v1/echo/jason:note"), of("Echo", &["jason:note"]));
        assert_eq!(found(Method::POST, "/v1/echo/jason:note"), of("EchoVerb", &["jason"]));
    }
}
