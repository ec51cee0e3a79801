//! The REST route table: the `google.api.http` bindings of the method table, with their
//! path templates parsed and their fields resolved once at start-up. There is no other list
//! of routes.

use std::collections::HashMap;
use std::sync::Arc;

use http::{Method, StatusCode};
use prost_reflect::{FieldDescriptor, MessageDescriptor};

use super::codec::MethodCodec;
use super::template::{Binding, Template, segment_count};
use crate::methods::{ApiMethod, MethodTable, field_path};
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
    /// The method's gRPC path, parsed once for the in-process call.
    pub grpc_uri: http::Uri,
    /// The resolved fields of each template variable, in template order.
    pub path_fields: Vec<Vec<FieldDescriptor>>,
    pub codec: MethodCodec,
    pub api: Arc<ApiMethod>,
    /// Which of the method's bindings this is: 0 for the main rule, then its
    /// `additional_bindings` in order.
    pub binding: usize,
}

impl Route {
    pub fn input(&self) -> MessageDescriptor {
        self.api.input()
    }

    pub fn success(&self) -> StatusCode {
        self.api.success()
    }

    /// The surface's `(iamd.json).ignore_unknown_fields`: unknown query parameters too.
    pub fn ignore_unknown(&self) -> bool {
        self.api.json.ignore_unknown_fields
    }
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
    /// Per HTTP method, the routes to try for a path: those whose template starts with the
    /// path's first segment or with a variable or wildcard, and takes as many segments as the
    /// path has. A request matches one or two templates whatever the size of the table.
    index: HashMap<Method, Candidates, foldhash::fast::RandomState>,
}

/// Lists of route indexes in table order, each by a path's segment count: entry `n` for `n`
/// segments, the last entry for every count beyond the longest template (only a `**` takes
/// those).
type ByCount = Vec<Vec<usize>>;

struct Candidates {
    /// By first literal: the routes starting with it merged with those of `any_first`.
    by_first: HashMap<String, ByCount, foldhash::fast::RandomState>,
    any_first: ByCount,
}

impl Candidates {
    fn of(routes: &[Route], method: &Method) -> Candidates {
        // One count past the longest template stands for every longer path.
        let counts = routes.iter().map(|r| r.template.segment_len()).max().unwrap_or(0) + 2;
        let by_count = |starts: &dyn Fn(Option<&str>) -> bool| -> ByCount {
            (0..counts)
                .map(|count| {
                    let takes = |route: &Route| {
                        route.method == *method
                            && starts(route.template.first_literal())
                            && route.template.takes_segments(count)
                    };
                    routes.iter().enumerate().filter(|(_, route)| takes(route)).map(|(i, _)| i).collect()
                })
                .collect()
        };
        let by_first = routes
            .iter()
            .filter(|route| route.method == *method)
            .filter_map(|route| route.template.first_literal())
            .map(|first| (first.to_owned(), by_count(&|other| other.is_none_or(|other| other == first))))
            .collect();
        Candidates { by_first, any_first: by_count(&|first| first.is_none()) }
    }

    fn list(&self, first: &str, count: usize) -> &[usize] {
        let by_count = self.by_first.get(first).unwrap_or(&self.any_first);
        by_count.get(count).or(by_count.last()).map_or(&[], Vec::as_slice)
    }
}

impl RouteTable {
    pub fn from_methods(methods: &MethodTable) -> Result<RouteTable, RouteError> {
        let mut routes = Vec::new();
        for api in methods.iter().filter(|api| !api.http.is_empty()) {
            let error = |message: String| RouteError { method: api.path.trim_start_matches('/').to_owned(), message };
            let codec =
                crate::pb::method_codec(&api.path).ok_or_else(|| error("has no generated JSON codec".into()))?;
            let grpc_uri = api.path.parse().map_err(|e| error(format!("`{}` is not a URI path: {e}", api.path)))?;
            for (index, binding) in api.http.iter().enumerate() {
                routes.push(route(api, binding, codec, &grpc_uri, index).map_err(&error)?);
            }
        }
        routes.sort_by(|a, b| b.template.specificity_cmp(&a.template));
        let mut index: HashMap<Method, Candidates, foldhash::fast::RandomState> = HashMap::default();
        for route in &routes {
            if !index.contains_key(&route.method) {
                index.insert(route.method.clone(), Candidates::of(&routes, &route.method));
            }
        }
        Ok(RouteTable { routes, index })
    }

    /// The routes of `method` that may match `path`, in table order.
    fn candidates(&self, method: &Method, path: &str) -> std::borrow::Cow<'_, [usize]> {
        let Some(candidates) = self.index.get(method) else { return std::borrow::Cow::Borrowed(&[]) };
        let rest = path.strip_prefix('/').unwrap_or(path);
        let count = segment_count(rest);
        let first = rest.split('/').next().unwrap_or("");
        let decoded =
            first.contains('%').then(|| percent_encoding::percent_decode_str(first).decode_utf8().ok()).flatten();
        let first = decoded.as_deref().unwrap_or(first);
        match first.rsplit_once(':') {
            // A path of one segment may end in a verb, which is not part of the literal: the
            // routes of both readings, in table order.
            Some((before_verb, _)) if count == 1 => {
                let mut both: Vec<usize> =
                    candidates.list(first, count).iter().chain(candidates.list(before_verb, count)).copied().collect();
                both.sort_unstable();
                both.dedup();
                both.into()
            }
            _ => candidates.list(first, count).into(),
        }
    }

    pub fn lookup(&self, method: &Method, path: &str) -> Lookup<'_> {
        // Routes of the request's method first: that is every successful request, and it
        // matches templates against a fraction of the table.
        let found = self
            .candidates(method, path)
            .iter()
            .filter_map(|&i| self.routes.get(i))
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

fn route(
    api: &Arc<ApiMethod>,
    rule: &HttpRule,
    codec: MethodCodec,
    grpc_uri: &http::Uri,
    binding: usize,
) -> Result<Route, String> {
    let (method, path) = match &rule.pattern {
        Some(Pattern::Get(p)) => (Method::GET, p),
        Some(Pattern::Put(p)) => (Method::PUT, p),
        Some(Pattern::Post(p)) => (Method::POST, p),
        Some(Pattern::Delete(p)) => (Method::DELETE, p),
        Some(Pattern::Patch(p)) => (Method::PATCH, p),
        Some(Pattern::Custom(custom)) => (
            Method::from_bytes(custom.kind.as_bytes()).map_err(|e| format!("custom kind `{}`: {e}", custom.kind))?,
            &custom.path,
        ),
        None => return Err("google.api.http has no pattern".into()),
    };
    let template = Template::parse(path).map_err(|e| e.to_string())?;
    let input = api.input();
    let path_fields = template
        .variables()
        .map(|names| field_path(&input, &names.join(".")).map_err(|e| format!("path variable: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
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
            let output = api.descriptor.output();
            let field = output
                .get_field_by_name(name)
                .ok_or_else(|| format!("response_body `{name}` is not in {}", output.full_name()))?;
            Some(field)
        }
    };
    Ok(Route {
        method,
        template,
        body,
        response_body,
        grpc_uri: grpc_uri.clone(),
        path_fields,
        codec,
        api: api.clone(),
        binding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        RouteTable::from_methods(&MethodTable::served().unwrap()).unwrap()
    }

    #[test]
    fn every_annotated_method_has_a_route() {
        let table = table();
        let pool = prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let methods: usize =
            pool.services().filter(|s| s.package_name().starts_with("iamd.")).map(|s| s.methods().count()).sum();
        assert_eq!(table.routes().len(), methods);
        assert!(table.routes().iter().any(|r| &*r.api.path == "/iamd.admin.v1.AdminService/GetOrgIAMPolicy"));
    }

    #[test]
    fn success_status_and_response_body_come_from_the_proto() {
        let table = table();
        let create = table.routes().iter().find(|r| r.api.path.ends_with("/CreateOrganization")).unwrap();
        assert_eq!(create.success(), StatusCode::CREATED);
        assert_eq!(create.response_body.as_ref().map(FieldDescriptor::json_name), Some("organization"));
        let delete = table.routes().iter().find(|r| r.api.path.ends_with("/DeleteOrganization")).unwrap();
        assert_eq!(delete.success(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn lookup_finds_method_not_allowed_and_not_found() {
        let table = table();
        match table.lookup(&Method::GET, "/admin/v1/orgs/abc/policies/domain") {
            Lookup::Found(route, bindings) => {
                assert!(route.api.path.ends_with("/GetCustomDomainPolicy"));
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

    /// The index only narrows what is tried: every path finds what trying every route in
    /// table order finds.
    #[test]
    fn the_index_finds_what_a_scan_of_every_route_finds() {
        let pool = prost_reflect::DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_methods(&MethodTable::from_pools(&[pool]).unwrap()).unwrap();
        let mut paths = vec!["/".to_owned(), "/nothing".to_owned(), "/v1".to_owned()];
        for route in table.routes() {
            let text = route.template.as_str();
            // Beyond the longest template too, where only a `**` may take the path.
            for fill in ["x", "a/b", "x:verb", "%41", "a/b/c/d/e/f/g/h/i/j/k", "a/b/c/d/e/f/g/h/i/j/k:verb"] {
                let mut path = String::new();
                let mut depth = 0;
                for c in text.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            path.push_str(fill);
                        }
                        _ if depth > 0 => {}
                        '*' => path.push_str(fill),
                        c => path.push(c),
                    }
                }
                paths.push(path);
            }
        }
        let methods = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
        for path in &paths {
            for method in &methods {
                let scanned = table
                    .routes()
                    .iter()
                    .filter(|route| route.method == *method)
                    .find_map(|route| route.template.matches(path).map(|b| (route.api.path.clone(), b)));
                let indexed = match table.lookup(method, path) {
                    Lookup::Found(route, bindings) => Some((route.api.path.clone(), bindings)),
                    _ => None,
                };
                assert_eq!(indexed, scanned, "{method} {path}");
            }
        }
    }

    /// pbjson's side of the JSON conventions is compiled in by build.rs, from the same
    /// `(iamd.json)` option the method table reads at start; the codec of every method must do
    /// what the method's entry says, so the table is the one account of them.
    #[test]
    fn every_codec_keeps_the_json_conventions_its_method_has_in_the_table() {
        let pool = prost_reflect::DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_methods(&MethodTable::from_pools(&[pool]).unwrap()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for route in table.routes() {
            let conventions = route.api.json;
            let unknown = (route.codec.request)(serde_json::json!({"noSuchField": 1}));
            assert_eq!(unknown.is_ok(), conventions.ignore_unknown_fields, "{}", route.api.path);
            seen.insert(("ignore_unknown_fields", conventions.ignore_unknown_fields));
            // A default answer prints its plain fields only if zero values are emitted; a
            // field marked `(iamd.omit_empty)` never while empty.
            let output = route.api.descriptor.output();
            let omit_empty = output.parent_pool().get_extension_by_name("iamd.omit_empty").unwrap();
            let plain = output
                .fields()
                .filter(|f| f.containing_oneof().is_none() && !f.options().has_extension(&omit_empty))
                .any(|f| f.is_list() || f.is_map() || !matches!(f.kind(), prost_reflect::Kind::Message(_)));
            if plain {
                let answer: serde_json::Value = serde_json::from_slice(&(route.codec.response)(&[]).unwrap()).unwrap();
                assert_eq!(answer != serde_json::json!({}), conventions.emit_zero_values, "{}", route.api.path);
                seen.insert(("emit_zero_values", conventions.emit_zero_values));
            }
        }
        assert_eq!(seen.len(), 4, "each convention is tried both ways: {seen:?}");
    }

    #[test]
    fn a_path_ending_in_a_verb_goes_to_a_template_with_that_verb_first() {
        let pool = prost_reflect::DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
        let table = RouteTable::from_methods(&MethodTable::from_pools(&[pool]).unwrap()).unwrap();
        let found = |method: Method, path: &str| match table.lookup(&method, path) {
            Lookup::Found(route, bindings) => {
                let name = route.api.path.rsplit('/').next().unwrap_or_default().to_owned();
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
