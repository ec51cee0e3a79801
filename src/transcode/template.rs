//! Parsing and matching of `google.api.http` path templates.
//!
//! This module owns the path-template grammar of googleapis'
//! `google/api/http.proto`:
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;
//! Segments = Segment { "/" Segment } ;
//! Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;
//! FieldPath = IDENT { "." IDENT } ;
//! Verb     = ":" LITERAL ;
//! ```
//!
//! It parses a template once ([`Template::parse`]), matches raw request
//! paths against it ([`Template::matches`]) and orders templates by
//! specificity ([`Template::specificity_cmp`]). It knows nothing about HTTP
//! methods, request bodies or protobuf messages: a match only yields the
//! field paths and decoded string values of the template's variables.
//!
//! Matching rules (following the `http.proto` spec):
//!
//! * The path is split on `/` after its leading `/`. When the template has a
//!   verb `:v`, the path must end with `:v`, which is stripped before the
//!   segments are matched. Without a verb, a `:` is ordinary data.
//! * Literals are compared with the percent-decoded path segment.
//! * `*` matches exactly one non-empty segment; `**` matches zero or more.
//!   Every segment matched by `*` or `**` must be non-empty, so `/a//b` and
//!   `/a/` never match a wildcard.
//! * A variable binds the path segments its pattern matched, joined with `/`.
//!   One whose pattern is a single segment other than `**` binds the fully
//!   percent-decoded segment. Any other variable binds its segments decoded
//!   except for RFC 6570 reserved characters (`:/?#[]@!$&'()*+,;=`), whose
//!   escapes are kept as written. A malformed escape or a value that is not
//!   UTF-8 means no match.
//! * Segments matched by a bare `*` or `**` are not bound, and so not decoded
//!   or checked for malformed escapes.
//!
//! Where http.proto leaves the choice open, or grpc-gateway and Envoy differ,
//! these are the decisions (one `decision_*` test each; routing by verb is
//! also tested through `RouteTable::lookup`):
//!
//! * `**` is zero or more segments in a variable too: `/v1/{name=o/**}` binds `o` for `/v1/o`.
//! * The root template `/` parses (though `Segments` wants one) and matches only `/`.
//! * A LITERAL is any segment but `*`/`**`, `*` and escapes included, both sides decoded: `/%e7%ac%ac` is `/第`.
//! * A verb is matched against the raw path, so it takes no escapes or `*`, and `%3A` is no verb colon.
//! * A template with a verb outranks any without, so `/{x=**}:verb` takes `/person/jason:verb` (grpc-gateway).
//! * Multi-segment variables keep reserved escapes (`%2F`, `%3A`…), http.proto's default; `%25` decodes.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// A parsed `google.api.http` path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The original template text.
    text: String,
    /// All segments, with the patterns of variables flattened in place.
    segments: Vec<Segment>,
    /// Variables in template order; their segment ranges do not overlap.
    variables: Vec<Variable>,
    /// The verb, without its leading `:`.
    verb: Option<String>,
}

/// One flattened template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    Star,
    /// `**`: the rest of the path; only ever the last segment.
    DoubleStar,
}

/// A variable and the flattened segments its pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    field_path: Arc<[String]>,
    /// Index of the first segment of the pattern in `Template::segments`.
    start: usize,
    /// Index one past the last segment of the pattern.
    end: usize,
    /// True when the pattern has several segments or a `**`: the value keeps
    /// reserved characters encoded.
    multi: bool,
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("path template is empty")]
    Empty,
    #[error("`{template}`: template must start with `/`")]
    MissingLeadingSlash { template: String },
    #[error("`{template}`: empty path segment")]
    EmptySegment { template: String },
    #[error("`{template}`: unbalanced braces")]
    UnbalancedBraces { template: String },
    #[error("`{template}`: variables may not nest")]
    NestedVariable { template: String },
    #[error("`{template}`: invalid field path `{field_path}`")]
    InvalidFieldPath { template: String, field_path: String },
    #[error("`{template}`: variable `{field_path}` appears more than once")]
    DuplicateVariable { template: String, field_path: String },
    #[error("`{template}`: `**` must be the last segment")]
    DoubleStarNotLast { template: String },
    #[error("`{template}`: invalid literal segment `{literal}`")]
    InvalidLiteral { template: String, literal: String },
    #[error("`{template}`: empty verb")]
    EmptyVerb { template: String },
    #[error("`{template}`: invalid verb `{verb}`")]
    InvalidVerb { template: String, verb: String },
}

/// A value bound by a match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Shared with the template: a binding is made for every request.
    pub field_path: Arc<[String]>,
    pub value: String,
}

impl Template {
    /// Parses a path template such as `/v1/{name=shelves/*}:undelete`.
    ///
    /// # Errors
    ///
    /// A [`TemplateError`] when the text does not follow the grammar, a `**`
    /// is not the last segment, or a field path appears twice.
    pub fn parse(template: &str) -> Result<Template, TemplateError> {
        if template.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parser = Parser { text: template, pos: 0, segments: Vec::new(), variables: Vec::new() };
        if parser.peek() != Some(b'/') {
            return Err(TemplateError::MissingLeadingSlash { template: template.to_owned() });
        }
        parser.pos += 1;
        // The root has no segments, though the grammar asks for one (see the module docs).
        if template == "/" {
            return Ok(Template { text: template.to_owned(), segments: Vec::new(), variables: Vec::new(), verb: None });
        }
        parser.segments(false)?;
        let verb = match parser.peek() {
            None => None,
            Some(b':') => {
                parser.pos += 1;
                let verb = parser.rest();
                if verb.is_empty() {
                    return Err(TemplateError::EmptyVerb { template: template.to_owned() });
                }
                if !is_valid_verb(verb) {
                    return Err(TemplateError::InvalidVerb { template: template.to_owned(), verb: verb.to_owned() });
                }
                Some(verb.to_owned())
            }
            // `segments` stops only at the end, a `:` or a stray `}`.
            Some(_) => return Err(parser.error_unbalanced()),
        };
        let Parser { segments, variables, .. } = parser;

        let last = segments.len().saturating_sub(1);
        if segments.iter().enumerate().any(|(i, s)| *s == Segment::DoubleStar && i != last) {
            return Err(TemplateError::DoubleStarNotLast { template: template.to_owned() });
        }
        for (i, var) in variables.iter().enumerate() {
            if variables.iter().skip(i + 1).any(|other| other.field_path == var.field_path) {
                return Err(TemplateError::DuplicateVariable {
                    template: template.to_owned(),
                    field_path: var.field_path.join("."),
                });
            }
        }

        Ok(Template { text: template.to_owned(), segments, variables, verb })
    }

    /// Matches a request path (the raw, still percent-encoded path of the URI,
    /// without query).
    ///
    /// Returns the variable bindings, decoded, in template order, or `None`
    /// when the path does not match.
    #[must_use]
    pub fn matches(&self, path: &str) -> Option<Vec<Binding>> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        // Most of the templates a router tries fail the count, before any segment is compared.
        if !self.takes_segments(segment_count(rest)) {
            return None;
        }
        // Then a structural pass that allocates nothing, so that the templates a router
        // tries and rejects cost no allocation.
        if !self.walk(rest, |_, _, _| true) {
            return None;
        }
        let mut bindings = Vec::with_capacity(self.variables.len());
        let mut vars = self.variables.iter().peekable();
        let mut var_start = 0;
        let complete = self.walk(rest, |index, start, end| {
            let Some(var) = vars.peek() else {
                return true;
            };
            if index == var.start {
                var_start = start;
            }
            if index + 1 == var.end {
                let Some(raw) = rest.get(var_start..end) else {
                    return false;
                };
                let Some(value) = decode(raw, var.multi) else {
                    return false;
                };
                bindings.push(Binding { field_path: var.field_path.clone(), value });
                vars.next();
            }
            true
        });
        (complete && bindings.len() == self.variables.len()).then_some(bindings)
    }

    /// Whether a path of `count` segments may match: one of as many segments, or, when the
    /// template ends in `**` (zero or more), of at least the segments before it.
    pub fn takes_segments(&self, count: usize) -> bool {
        match self.segments.last() {
            Some(Segment::DoubleStar) => count + 1 >= self.segments.len(),
            _ => count == self.segments.len(),
        }
    }

    /// The number of segments, a trailing `**` included.
    pub fn segment_len(&self) -> usize {
        self.segments.len()
    }

    /// The first segment, when it is a literal (decoded): what the route table indexes.
    pub fn first_literal(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(literal)) => Some(literal),
            _ => None,
        }
    }

    /// The field paths of all variables, in template order.
    pub fn variables(&self) -> impl Iterator<Item = &[String]> {
        self.variables.iter().map(|v| &*v.field_path)
    }

    /// The verb without its leading `:`, if the template has one.
    #[must_use]
    pub fn verb(&self) -> Option<&str> {
        self.verb.as_deref()
    }

    /// The original template text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Orders templates so that when several match one path the most specific
    /// wins (`Greater` = more specific).
    ///
    /// A template with a verb beats any without: it only matches paths that
    /// end in its verb, and such a path goes to a template with that verb
    /// first. Then segments (with variables counted as their patterns) are
    /// compared position by position, ranked literal, then `*`, then no
    /// segment at all, then `**`. So more segments rank first (`/a/*` beats
    /// `/a`), except that a trailing `**`, which also matches zero segments,
    /// ranks below having no further segment (`/a` beats `/a/**`). `Equal`
    /// means equally specific, not identical.
    #[must_use]
    pub fn specificity_cmp(&self, other: &Template) -> Ordering {
        fn rank(segment: Option<&Segment>) -> u8 {
            match segment {
                Some(Segment::Literal(_)) => 3,
                Some(Segment::Star) => 2,
                None => 1,
                Some(Segment::DoubleStar) => 0,
            }
        }
        let len = self.segments.len().max(other.segments.len());
        self.verb.is_some().cmp(&other.verb.is_some()).then_with(|| {
            (0..len)
                .map(|i| rank(self.segments.get(i)).cmp(&rank(other.segments.get(i))))
                .find(|ordering| ordering.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    /// Walks the path segments of `rest` (the path after its leading `/` and
    /// without the verb) against the template segments, calling
    /// `visit(segment_index, start, end)` with the byte range in `rest` each
    /// template segment matched (for `**`, the whole remainder, possibly
    /// empty). Returns false when the path does not match or `visit` returned
    /// false.
    fn walk(&self, rest: &str, mut visit: impl FnMut(usize, usize, usize) -> bool) -> bool {
        // Zero path segments when nothing is left, so `/` matches `/**`.
        let mut parts = (!rest.is_empty()).then(|| rest.split('/')).into_iter().flatten().peekable();
        let mut offset = 0;
        for (index, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::DoubleStar => {
                    if parts.any(str::is_empty) {
                        return false;
                    }
                    // Zero segments leave `offset` one past the end (no `/` follows).
                    return visit(index, offset.min(rest.len()), rest.len());
                }
                Segment::Star | Segment::Literal(_) => {
                    let Some(part) = parts.next() else {
                        return false;
                    };
                    let matched = match segment {
                        Segment::Literal(literal) => decoded_eq(part, literal),
                        _ => !part.is_empty(),
                    };
                    if !matched || !visit(index, offset, offset + part.len()) {
                        return false;
                    }
                    offset += part.len() + 1;
                }
            }
        }
        parts.next().is_none()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Recursive-descent parser over the template bytes. `pos` only ever stops at
/// ASCII delimiters or the end, so slices at it are on char boundaries.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
    segments: Vec<Segment>,
    variables: Vec<Variable>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn rest(&self) -> &str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn template(&self) -> String {
        self.text.to_owned()
    }

    fn error_unbalanced(&self) -> TemplateError {
        TemplateError::UnbalancedBraces { template: self.template() }
    }

    /// `Segments = Segment { "/" Segment }`
    fn segments(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        loop {
            self.segment(in_variable)?;
            if self.peek() != Some(b'/') {
                return Ok(());
            }
            self.pos += 1;
        }
    }

    fn segment(&mut self, in_variable: bool) -> Result<(), TemplateError> {
        if self.peek() == Some(b'{') {
            if in_variable {
                return Err(TemplateError::NestedVariable { template: self.template() });
            }
            self.pos += 1;
            return self.variable();
        }
        // A chunk runs to the next `/`, `}` or the end; outside a variable
        // also to a `:`, which starts the verb. Invalid characters inside it
        // (`{`, `*`, a `:` inside a variable, ...) are reported below.
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'/' || b == b'}' || (b == b':' && !in_variable) {
                break;
            }
            self.pos += 1;
        }
        let chunk = self.text.get(start..self.pos).unwrap_or_default();
        let segment = match chunk {
            "" if self.peek() == Some(b'}') && !in_variable => {
                return Err(self.error_unbalanced());
            }
            "" => {
                return Err(TemplateError::EmptySegment { template: self.template() });
            }
            "*" => Segment::Star,
            "**" => Segment::DoubleStar,
            literal => match parse_literal(literal) {
                Some(decoded) => Segment::Literal(decoded),
                None => {
                    return Err(TemplateError::InvalidLiteral {
                        template: self.template(),
                        literal: literal.to_owned(),
                    });
                }
            },
        };
        self.segments.push(segment);
        Ok(())
    }

    /// `Variable = "{" FieldPath [ "=" Segments ] "}"`, after the `{`.
    fn variable(&mut self) -> Result<(), TemplateError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if b == b'=' || b == b'}' {
                break;
            }
            self.pos += 1;
        }
        let Some(delimiter) = self.peek() else {
            return Err(self.error_unbalanced());
        };
        let raw_path = self.text.get(start..self.pos).unwrap_or_default();
        let field_path = parse_field_path(raw_path).ok_or_else(|| TemplateError::InvalidFieldPath {
            template: self.template(),
            field_path: raw_path.to_owned(),
        })?;
        self.pos += 1;
        let first = self.segments.len();
        if delimiter == b'=' {
            self.segments(true)?;
            if self.peek() != Some(b'}') {
                return Err(self.error_unbalanced());
            }
            self.pos += 1;
        } else {
            self.segments.push(Segment::Star);
        }
        let pattern = self.segments.get(first..).unwrap_or_default();
        let multi = pattern.len() > 1 || pattern.contains(&Segment::DoubleStar);
        self.variables.push(Variable { field_path: field_path.into(), start: first, end: self.segments.len(), multi });
        Ok(())
    }
}

/// `FieldPath = IDENT { "." IDENT }` with `IDENT = [A-Za-z_][A-Za-z0-9_]*`.
fn parse_field_path(raw: &str) -> Option<Vec<String>> {
    raw.split('.')
        .map(|ident| {
            let mut bytes = ident.bytes();
            let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')).then(|| ident.to_owned())
        })
        .collect()
}

/// A verb is non-empty and made of RFC 3986 path characters other than `:`
/// and `*`, without percent escapes (it is compared with the raw path), or of
/// non-ASCII characters.
fn is_valid_verb(verb: &str) -> bool {
    !verb.is_empty() && verb.bytes().all(|b| b != b'*' && is_path_char(b))
}

/// RFC 3986 `pchar` without `:` (the verb's) and `%` (escapes are read
/// apart), or any non-ASCII byte.
fn is_path_char(b: u8) -> bool {
    !b.is_ascii() || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b)
}

/// A literal segment, percent escapes decoded; `None` when it has a character
/// that is not a path character, a malformed escape, or decodes to something
/// that is not UTF-8.
fn parse_literal(literal: &str) -> Option<String> {
    let mut out = Vec::with_capacity(literal.len());
    let mut bytes = literal.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => out.push(escape(&mut bytes)?),
            b if is_path_char(b) => out.push(b),
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 6570 reserved characters: gen-delims and sub-delims of RFC 3986.
fn is_reserved(b: u8) -> bool {
    b":/?#[]@!$&'()*+,;=".contains(&b)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Reads the two hex digits after a `%`.
fn escape(bytes: &mut impl Iterator<Item = u8>) -> Option<u8> {
    let high = hex_value(bytes.next()?)?;
    let low = hex_value(bytes.next()?)?;
    Some(high << 4 | low)
}

/// The segments of what follows a request path's leading `/`. A verb holds no `/`, so it
/// adds none (a path of nothing but a verb counts one, which only a `**` takes).
pub fn segment_count(rest: &str) -> usize {
    if rest.is_empty() { 0 } else { rest.bytes().filter(|&b| b == b'/').count() + 1 }
}

/// Whether the percent-decoded `raw` equals `literal`, without allocating.
/// A malformed escape never matches.
fn decoded_eq(raw: &str, literal: &str) -> bool {
    if !raw.contains('%') {
        return raw == literal;
    }
    let mut raw = raw.bytes();
    let mut literal = literal.bytes();
    while let Some(b) = raw.next() {
        let decoded = if b == b'%' {
            match escape(&mut raw) {
                Some(decoded) => decoded,
                None => return false,
            }
        } else {
            b
        };
        if literal.next() != Some(decoded) {
            return false;
        }
    }
    literal.next().is_none()
}

/// Percent-decodes a bound value. With `keep_reserved` (a multi-segment
/// variable), escapes of RFC 6570 reserved characters stay as written.
/// `None` on a malformed escape or a result that is not UTF-8.
fn decode(raw: &str, keep_reserved: bool) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let mut digits = bytes.clone().take(2);
        let decoded = escape(&mut bytes)?;
        if keep_reserved && is_reserved(decoded) {
            out.push(b'%');
            out.extend(digits.by_ref());
        } else {
            out.push(decoded);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(template: &str) -> Template {
        Template::parse(template).unwrap()
    }

    fn b(field_path: &str, value: &str) -> Binding {
        Binding {
            field_path: field_path.split('.').map(str::to_owned).collect::<Vec<_>>().into(),
            value: value.to_owned(),
        }
    }

    fn err(template: &str) -> TemplateError {
        Template::parse(template).unwrap_err()
    }

    // ---- grammar features ----

    #[test]
    fn literal_only() {
        let tpl = t("/v1/organizations");
        assert_eq!(tpl.matches("/v1/organizations"), Some(vec![]));
        assert_eq!(tpl.matches("/v1/organization"), None);
        assert_eq!(tpl.matches("/v1/organizations/x"), None);
        assert_eq!(tpl.matches("/v1"), None);
        assert_eq!(tpl.matches("/V1/organizations"), None, "case-sensitive");
        assert_eq!(tpl.matches("v1/organizations"), None, "no leading slash");
        assert_eq!(tpl.matches(""), None);
        assert_eq!(tpl.variables().count(), 0);
        assert_eq!(tpl.verb(), None);
        assert_eq!(tpl.as_str(), "/v1/organizations");
        assert_eq!(tpl.to_string(), "/v1/organizations");
    }

    #[test]
    fn literal_compares_decoded_segment() {
        let tpl = t("/v1/organizations");
        assert_eq!(tpl.matches("/v1/organ%69zations"), Some(vec![]));
        assert_eq!(tpl.matches("/v1/organ%6Azations"), None);
        assert_eq!(tpl.matches("/v1/organ%zzations"), None);
        assert_eq!(tpl.matches("/v1/organizations%"), None);
        let tpl = t("/v1/café");
        assert_eq!(tpl.matches("/v1/caf%C3%A9"), Some(vec![]));
        assert_eq!(tpl.matches("/v1/café"), Some(vec![]));
    }

    #[test]
    fn simple_variable() {
        let tpl = t("/v1/organizations/{id}");
        assert_eq!(tpl.matches("/v1/organizations/org-1"), Some(vec![b("id", "org-1")]));
        assert_eq!(tpl.matches("/v1/organizations"), None);
        assert_eq!(tpl.matches("/v1/organizations/a/b"), None);
        assert_eq!(tpl.variables().collect::<Vec<_>>(), vec![&["id".to_owned()][..]]);
    }

    #[test]
    fn nested_field_path() {
        let tpl = t("/v1/policies/{policy.id}/members/{member.user_id}");
        assert_eq!(
            tpl.matches("/v1/policies/p1/members/u9"),
            Some(vec![b("policy.id", "p1"), b("member.user_id", "u9")])
        );
        let vars: Vec<Vec<String>> = tpl.variables().map(<[String]>::to_vec).collect();
        assert_eq!(
            vars,
            vec![vec!["policy".to_owned(), "id".to_owned()], vec!["member".to_owned(), "user_id".to_owned()],]
        );
    }

    #[test]
    fn explicit_star_variable_is_single_segment() {
        let tpl = t("/v1/things/{id=*}");
        assert_eq!(tpl, t("/v1/things/{id}").with_text("/v1/things/{id=*}"));
        assert_eq!(tpl.matches("/v1/things/a%2Fb"), Some(vec![b("id", "a/b")]));
    }

    impl Template {
        fn with_text(mut self, text: &str) -> Self {
            self.text = text.to_owned();
            self
        }
    }

    #[test]
    fn variable_with_pattern() {
        let tpl = t("/v1/{name=shelves/*}");
        assert_eq!(tpl.matches("/v1/shelves/s1"), Some(vec![b("name", "shelves/s1")]));
        assert_eq!(tpl.matches("/v1/shelves"), None);
        assert_eq!(tpl.matches("/v1/books/s1"), None);
        assert_eq!(tpl.matches("/v1/shelves/s1/x"), None);
        assert_eq!(tpl.matches("/v1/shelves/"), None);
    }

    #[test]
    fn variable_with_multi_segment_pattern() {
        let tpl = t("/v1/{name=shelves/*/books/*}");
        assert_eq!(tpl.matches("/v1/shelves/s1/books/b2"), Some(vec![b("name", "shelves/s1/books/b2")]));
        assert_eq!(tpl.matches("/v1/shelves/s1/books"), None);
        assert_eq!(tpl.matches("/v1/shelves/s1/novels/b2"), None);
        assert_eq!(tpl.matches("/v1/shelves//books/b2"), None);
    }

    #[test]
    fn variable_pattern_followed_by_segments() {
        let tpl = t("/v1/{parent=orgs/*}/policies/{id}");
        assert_eq!(tpl.matches("/v1/orgs/o1/policies/p1"), Some(vec![b("parent", "orgs/o1"), b("id", "p1")]));
        assert_eq!(tpl.matches("/v1/orgs/o1/policies"), None);
    }

    #[test]
    fn double_star_variable_matches_zero_or_more_segments() {
        let tpl = t("/files/{path=**}");
        assert_eq!(tpl.matches("/files/a/b/c"), Some(vec![b("path", "a/b/c")]));
        assert_eq!(tpl.matches("/files/a"), Some(vec![b("path", "a")]));
        assert_eq!(tpl.matches("/files"), Some(vec![b("path", "")]));
        assert_eq!(tpl.matches("/files/"), None);
        assert_eq!(tpl.matches("/files/a//b"), None);
        assert_eq!(tpl.matches("/other/a"), None);
    }

    #[test]
    fn double_star_after_literal_in_variable() {
        let tpl = t("/v1/{name=projects/**}");
        assert_eq!(tpl.matches("/v1/projects/p/x"), Some(vec![b("name", "projects/p/x")]));
        assert_eq!(tpl.matches("/v1/projects"), Some(vec![b("name", "projects")]));
        assert_eq!(tpl.matches("/v1/projects/"), None);
        assert_eq!(tpl.matches("/v1/project"), None);
    }

    #[test]
    fn bare_star() {
        let tpl = t("/a/*/c");
        assert_eq!(tpl.matches("/a/b/c"), Some(vec![]));
        assert_eq!(tpl.matches("/a/anything%20here/c"), Some(vec![]));
        assert_eq!(tpl.matches("/a//c"), None);
        assert_eq!(tpl.matches("/a/c"), None);
        assert_eq!(tpl.matches("/a/b/x/c"), None);
    }

    #[test]
    fn bare_double_star_matches_zero_or_more_segments() {
        let tpl = t("/a/**");
        assert_eq!(tpl.matches("/a"), Some(vec![]));
        assert_eq!(tpl.matches("/a/b"), Some(vec![]));
        assert_eq!(tpl.matches("/a/b/c/d"), Some(vec![]));
        assert_eq!(tpl.matches("/a/"), None);
        assert_eq!(tpl.matches("/a/b//c"), None);
        assert_eq!(tpl.matches("/b"), None);
        let root = t("/**");
        assert_eq!(root.matches("/"), Some(vec![]));
        assert_eq!(root.matches("/x/y"), Some(vec![]));
        assert_eq!(root.matches("//"), None);
    }

    #[test]
    fn verb_on_literal() {
        let tpl = t("/v1/things:batchGet");
        assert_eq!(tpl.verb(), Some("batchGet"));
        assert_eq!(tpl.matches("/v1/things:batchGet"), Some(vec![]));
        assert_eq!(tpl.matches("/v1/things"), None);
        assert_eq!(tpl.matches("/v1/things:batchget"), None);
        assert_eq!(tpl.matches("/v1/things:batchGet/x"), None);
    }

    #[test]
    fn verb_after_literal_after_variable() {
        let tpl = t("/iam/policies/{id}/members:add");
        assert_eq!(tpl.verb(), Some("add"));
        assert_eq!(tpl.matches("/iam/policies/p1/members:add"), Some(vec![b("id", "p1")]));
        assert_eq!(tpl.matches("/iam/policies/p1/members"), None);
        assert_eq!(tpl.matches("/iam/policies/p1/members:remove"), None);
        assert_eq!(tpl.matches("/iam/policies/p1/members:ad"), None);
        assert_eq!(tpl.matches("/iam/policies/p1/membersadd"), None);
    }

    #[test]
    fn verb_after_variable() {
        let tpl = t("/v1/things/{id}:cancel");
        assert_eq!(tpl.matches("/v1/things/t1:cancel"), Some(vec![b("id", "t1")]));
        // Only the final `:cancel` is the verb; earlier colons are data.
        assert_eq!(tpl.matches("/v1/things/a:b:cancel"), Some(vec![b("id", "a:b")]));
        assert_eq!(tpl.matches("/v1/things/:cancel"), None);
        assert_eq!(tpl.matches("/v1/things/t1"), None);
        assert_eq!(tpl.matches("/v1/things/t1:delete"), None);
    }

    #[test]
    fn verb_after_variable_with_pattern() {
        let tpl = t("/v1/{name=things/*}:undelete");
        assert_eq!(tpl.verb(), Some("undelete"));
        assert_eq!(tpl.matches("/v1/things/abc:undelete"), Some(vec![b("name", "things/abc")]));
        assert_eq!(tpl.matches("/v1/things/abc"), None);
        assert_eq!(tpl.matches("/v1/things/abc:delete"), None);
        assert_eq!(tpl.matches("/v1/things:undelete"), None);
    }

    #[test]
    fn verb_after_double_star() {
        let tpl = t("/v1/{name=files/**}:download");
        assert_eq!(tpl.matches("/v1/files/a/b:download"), Some(vec![b("name", "files/a/b")]));
        assert_eq!(tpl.matches("/v1/files:download"), Some(vec![b("name", "files")]));
        assert_eq!(tpl.matches("/v1/files/:download"), None);
        let bare = t("/**:ping");
        assert_eq!(bare.matches("/:ping"), Some(vec![]));
        assert_eq!(bare.matches("/x/y:ping"), Some(vec![]));
        assert_eq!(bare.matches("/x/y"), None);
    }

    // ---- matching details ----

    #[test]
    fn colon_without_verb_is_data() {
        let tpl = t("/v1/things/{id}");
        assert_eq!(tpl.matches("/v1/things/a:b"), Some(vec![b("id", "a:b")]));
        assert_eq!(tpl.matches("/v1/things/x:undelete"), Some(vec![b("id", "x:undelete")]));
        assert_eq!(t("/v1/things").matches("/v1/things:list"), None);
    }

    #[test]
    fn trailing_slash_never_matches() {
        assert_eq!(t("/orgs").matches("/orgs/"), None);
        assert_eq!(t("/orgs/{id}").matches("/orgs/"), None);
        assert_eq!(t("/orgs/{id}").matches("/orgs/o1/"), None);
        assert_eq!(t("/orgs/*").matches("/orgs/"), None);
    }

    #[test]
    fn empty_segment_never_matches() {
        assert_eq!(t("/a/*/b").matches("/a//b"), None);
        assert_eq!(t("/a/{x}/b").matches("/a//b"), None);
        assert_eq!(t("/a/b").matches("/a//b"), None);
        assert_eq!(t("/a/b").matches("//a/b"), None);
    }

    #[test]
    fn single_segment_value_is_fully_decoded() {
        let tpl = t("/v1/users/{id}");
        assert_eq!(tpl.matches("/v1/users/a%2Fb"), Some(vec![b("id", "a/b")]));
        assert_eq!(tpl.matches("/v1/users/a%2fb"), Some(vec![b("id", "a/b")]));
        assert_eq!(tpl.matches("/v1/users/j%C3%B6rg%20k"), Some(vec![b("id", "jörg k")]));
        assert_eq!(tpl.matches("/v1/users/a+b"), Some(vec![b("id", "a+b")]));
        assert_eq!(tpl.matches("/v1/users/%25"), Some(vec![b("id", "%")]));
        assert_eq!(tpl.matches("/v1/users/%3A"), Some(vec![b("id", ":")]));
    }

    #[test]
    fn multi_segment_value_keeps_reserved_characters_encoded() {
        let tpl = t("/files/{path=**}");
        assert_eq!(tpl.matches("/files/a%2Fb/c%20d"), Some(vec![b("path", "a%2Fb/c d")]));
        assert_eq!(tpl.matches("/files/a%2fb"), Some(vec![b("path", "a%2fb")]));
        assert_eq!(tpl.matches("/files/%25/%3a"), Some(vec![b("path", "%/%3a")]));
        assert_eq!(tpl.matches("/files/%E6%97%A5%7E%22"), Some(vec![b("path", "日~\"")]));
        let tpl = t("/v1/{name=shelves/*}");
        assert_eq!(tpl.matches("/v1/shelves/x%2Fy%21"), Some(vec![b("name", "shelves/x%2Fy%21")]));
    }

    #[test]
    fn malformed_escape_or_bad_utf8_does_not_match() {
        let single = t("/v1/users/{id}");
        assert_eq!(single.matches("/v1/users/%zz"), None);
        assert_eq!(single.matches("/v1/users/a%2"), None);
        assert_eq!(single.matches("/v1/users/a%"), None);
        assert_eq!(single.matches("/v1/users/%FF"), None);
        assert_eq!(single.matches("/v1/users/%C3"), None);
        let multi = t("/files/{path=**}");
        assert_eq!(multi.matches("/files/a/%zz"), None);
        assert_eq!(multi.matches("/files/%2"), None);
        assert_eq!(multi.matches("/files/%C3%28"), None);
    }

    #[test]
    fn unbound_wildcards_are_not_decoded() {
        // Documented choice: only bound values and literals are decoded.
        assert_eq!(t("/a/*").matches("/a/%zz"), Some(vec![]));
        assert_eq!(t("/a/**").matches("/a/%zz/%FF"), Some(vec![]));
    }

    // ---- the decisions of the module docs, one test each ----

    #[test]
    fn decision_double_star_in_a_variable_matches_zero_segments() {
        let tpl = t("/v1/{name=o/**}");
        assert_eq!(tpl.matches("/v1/o"), Some(vec![b("name", "o")]));
        assert_eq!(tpl.matches("/v1/o/a/b"), Some(vec![b("name", "o/a/b")]));
        assert_eq!(tpl.matches("/v1/o/"), None);
        assert_eq!(tpl.matches("/v1"), None);
        assert_eq!(t("/{x=**}").matches("/"), Some(vec![b("x", "")]));
    }

    #[test]
    fn decision_the_root_template_matches_only_the_root() {
        let root = t("/");
        assert_eq!(root.as_str(), "/");
        assert_eq!(root.variables().count(), 0);
        assert_eq!(root.matches("/"), Some(vec![]));
        for path in ["", "//", "/a", "/:verb", "/%2F"] {
            assert_eq!(root.matches(path), None, "{path}");
        }
        // More specific than the catch-all, less than anything with a segment.
        assert_eq!(root.specificity_cmp(&t("/**")), Ordering::Greater);
        assert_eq!(root.specificity_cmp(&t("/{x}")), Ordering::Less);
    }

    #[test]
    fn decision_literals_may_hold_escapes_and_stars() {
        let encoded = t("/%e7%ac%ac/x");
        assert_eq!(encoded.segments, t("/第/x").segments, "the same template");
        assert_eq!(encoded.as_str(), "/%e7%ac%ac/x");
        for path in ["/%E7%AC%AC/x", "/%e7%ac%ac/x", "/第/x", "/%E7%ac%AC/x"] {
            assert_eq!(encoded.matches(path), Some(vec![]), "{path}");
        }
        assert_eq!(encoded.matches("/%E7%AC/x"), None);
        let escaped_slash = t("/a%2Fb");
        assert_eq!(escaped_slash.matches("/a%2fb"), Some(vec![]));
        assert_eq!(escaped_slash.matches("/a/b"), None, "an escaped `/` is not a separator");
        // Only `*` and `**` alone are wildcards.
        let star = t("/v1/a*");
        assert_eq!(star.matches("/v1/a*"), Some(vec![]));
        assert_eq!(star.matches("/v1/a%2A"), Some(vec![]));
        assert_eq!(star.matches("/v1/ab"), None);
        assert_eq!(t("/***").matches("/***"), Some(vec![]));
        assert_eq!(t("/{x=a*/*}").matches("/a*/b"), Some(vec![b("x", "a*/b")]));
    }

    #[test]
    fn decision_verbs_are_compared_raw() {
        let tpl = t("/v1/{id}:cancel");
        assert_eq!(tpl.matches("/v1/x:cancel"), Some(vec![b("id", "x")]));
        assert_eq!(tpl.matches("/v1/x%3Acancel"), None, "an escaped colon is data");
        assert_eq!(tpl.matches("/v1/x:c%61ncel"), None);
        assert!(matches!(err("/a:c%61ncel"), TemplateError::InvalidVerb { .. }));
        assert!(matches!(err("/a:b*"), TemplateError::InvalidVerb { .. }));
    }

    #[test]
    fn decision_a_template_with_a_verb_beats_any_without() {
        let by_id = t("/person/{id=*}");
        let with_verb = t("/{x=**}:verb");
        // Both match; the verb decides, whatever the segments.
        assert_eq!(by_id.matches("/person/jason:verb"), Some(vec![b("id", "jason:verb")]));
        assert_eq!(with_verb.matches("/person/jason:verb"), Some(vec![b("x", "person/jason")]));
        assert_eq!(with_verb.specificity_cmp(&by_id), Ordering::Greater);
        assert_eq!(by_id.specificity_cmp(&with_verb), Ordering::Less);
        assert_eq!(with_verb.matches("/person/jason"), None);
        // Between templates with verbs, segments decide as usual.
        assert_eq!(t("/person/{id}:verb").specificity_cmp(&with_verb), Ordering::Greater);
    }

    #[test]
    fn decision_multi_segment_variables_keep_reserved_characters() {
        let tpl = t("/v1/{name=shelves/*}");
        assert_eq!(tpl.matches("/v1/shelves/a%2Fb%3Ac"), Some(vec![b("name", "shelves/a%2Fb%3Ac")]));
        for reserved in ":/?#[]@!$&'()*+,;=".bytes() {
            let escaped = format!("%{reserved:02X}");
            let path = format!("/v1/shelves/a{escaped}b");
            assert_eq!(tpl.matches(&path), Some(vec![b("name", &format!("shelves/a{escaped}b"))]), "{path}");
            // A single-segment variable decodes them all.
            assert_eq!(
                t("/v1/{id}").matches(&format!("/v1/a{escaped}b")),
                Some(vec![b("id", &format!("a{}b", reserved as char))])
            );
        }
        // Everything else is decoded, `%25` included.
        assert_eq!(tpl.matches("/v1/shelves/%25%20%7E%C3%A9"), Some(vec![b("name", "shelves/% ~é")]));
    }

    // ---- parse errors ----

    #[test]
    fn error_empty() {
        assert_eq!(err(""), TemplateError::Empty);
        assert_eq!(err("").to_string(), "path template is empty");
    }

    #[test]
    fn error_missing_leading_slash() {
        assert_eq!(err("v1/things"), TemplateError::MissingLeadingSlash { template: "v1/things".into() });
        assert_eq!(err("v1/things").to_string(), "`v1/things`: template must start with `/`");
        assert!(matches!(err("{id}"), TemplateError::MissingLeadingSlash { .. }));
    }

    #[test]
    fn error_empty_segment() {
        for template in ["//", "/a//b", "/a/", "/:verb", "/a/:verb", "/{x=}", "/{x=a/}", "/{x=/a}"] {
            assert_eq!(err(template), TemplateError::EmptySegment { template: template.into() }, "{template}");
        }
        assert_eq!(err("/a//b").to_string(), "`/a//b`: empty path segment");
    }

    #[test]
    fn error_unbalanced_braces() {
        for template in ["/{id", "/a/{id=*", "/a/{id=b/c", "/a}", "/}", "/a/}/b", "/{id}}", "/{a}/{"] {
            assert_eq!(err(template), TemplateError::UnbalancedBraces { template: template.into() }, "{template}");
        }
        assert_eq!(err("/{id").to_string(), "`/{id`: unbalanced braces");
    }

    #[test]
    fn error_nested_variable() {
        assert_eq!(err("/{a={b}}"), TemplateError::NestedVariable { template: "/{a={b}}".into() });
        assert_eq!(err("/{a=x/{b}}").to_string(), "`/{a=x/{b}}`: variables may not nest");
    }

    #[test]
    fn error_invalid_field_path() {
        for (template, field_path) in [
            ("/{}", ""),
            ("/{=*}", ""),
            ("/{1a}", "1a"),
            ("/{a-b}", "a-b"),
            ("/{a..b}", "a..b"),
            ("/{a.}", "a."),
            ("/{.a}", ".a"),
            ("/{a b}", "a b"),
            ("/{a/b}", "a/b"),
            ("/{a{b}", "a{b"),
        ] {
            assert_eq!(
                err(template),
                TemplateError::InvalidFieldPath { template: template.into(), field_path: field_path.into() },
                "{template}"
            );
        }
        assert_eq!(err("/{1a}").to_string(), "`/{1a}`: invalid field path `1a`");
        // Valid idents: underscores, digits after the first char, mixed case.
        assert!(Template::parse("/{_a.b_2.Cc}").is_ok());
    }

    #[test]
    fn error_duplicate_variable() {
        assert_eq!(
            err("/a/{id}/b/{id}"),
            TemplateError::DuplicateVariable { template: "/a/{id}/b/{id}".into(), field_path: "id".into() }
        );
        assert_eq!(
            err("/{p.id}/{p.id=x/*}").to_string(),
            "`/{p.id}/{p.id=x/*}`: variable `p.id` appears more than once"
        );
        // Different paths sharing a prefix are fine.
        assert!(Template::parse("/{p.id}/{p.name}").is_ok());
    }

    #[test]
    fn error_double_star_not_last() {
        for template in ["/a/**/b", "/**/a", "/**/**", "/{x=**}/a", "/{x=**/a}", "/**/{x}", "/a/**/b:verb"] {
            assert_eq!(err(template), TemplateError::DoubleStarNotLast { template: template.into() }, "{template}");
        }
        assert_eq!(err("/a/**/b").to_string(), "`/a/**/b`: `**` must be the last segment");
    }

    #[test]
    fn error_invalid_literal() {
        for (template, literal) in [
            ("/a{b}", "a{b"),
            ("/{x=a:b}", "a:b"),
            ("/a b", "a b"),
            ("/a?b", "a?b"),
            ("/a#b", "a#b"),
            ("/a\"b", "a\"b"),
            ("/a%2", "a%2"),
            ("/a%zzb", "a%zzb"),
            ("/%FF", "%FF"),
        ] {
            assert_eq!(
                err(template),
                TemplateError::InvalidLiteral { template: template.into(), literal: literal.into() },
                "{template}"
            );
        }
        assert_eq!(err("/a%2").to_string(), "`/a%2`: invalid literal segment `a%2`");
    }

    #[test]
    fn error_empty_verb() {
        assert_eq!(err("/a:"), TemplateError::EmptyVerb { template: "/a:".into() });
        assert_eq!(err("/{id}:").to_string(), "`/{id}:`: empty verb");
    }

    #[test]
    fn error_invalid_verb() {
        for (template, verb) in
            [("/a:b/c", "b/c"), ("/a::b", ":b"), ("/a:b:c", "b:c"), ("/a:*", "*"), ("/a:{x}", "{x}"), ("/a:b}", "b}")]
        {
            assert_eq!(
                err(template),
                TemplateError::InvalidVerb { template: template.into(), verb: verb.into() },
                "{template}"
            );
        }
        assert_eq!(err("/a:b/c").to_string(), "`/a:b/c`: invalid verb `b/c`");
    }

    #[test]
    fn accessors() {
        let tpl = t("/v1/{parent=orgs/*}/policies/{policy.id}:add");
        assert_eq!(tpl.as_str(), "/v1/{parent=orgs/*}/policies/{policy.id}:add");
        assert_eq!(tpl.verb(), Some("add"));
        let vars: Vec<&[String]> = tpl.variables().collect();
        assert_eq!(vars.len(), 2);
        assert_eq!(vars[0], ["parent".to_owned()]);
        assert_eq!(vars[1], ["policy".to_owned(), "id".to_owned()]);
    }

    // ---- specificity ----

    #[test]
    fn specificity_literal_beats_variable() {
        let search = t("/organizations/search");
        let by_id = t("/organizations/{id}");
        assert_eq!(search.specificity_cmp(&by_id), Ordering::Greater);
        assert_eq!(by_id.specificity_cmp(&search), Ordering::Less);
        // Both match; the more specific one is the one to use.
        assert!(search.matches("/organizations/search").is_some());
        assert!(by_id.matches("/organizations/search").is_some());
    }

    #[test]
    fn specificity_star_beats_double_star() {
        let one = t("/a/{x}");
        let rest = t("/a/**");
        assert_eq!(one.specificity_cmp(&rest), Ordering::Greater);
        assert_eq!(rest.specificity_cmp(&one), Ordering::Less);
        assert_eq!(t("/a/*").specificity_cmp(&t("/a/{x=**}")), Ordering::Greater);
    }

    #[test]
    fn specificity_segment_order_before_length() {
        // First difference decides, even if the other has more segments.
        assert_eq!(t("/a/b").specificity_cmp(&t("/a/*/c/d")), Ordering::Greater);
        assert_eq!(t("/{x}/b/c").specificity_cmp(&t("/a/*")), Ordering::Less);
    }

    #[test]
    fn specificity_more_segments_first() {
        assert_eq!(t("/a/{x}").specificity_cmp(&t("/a")), Ordering::Greater);
        assert_eq!(t("/a/b/c").specificity_cmp(&t("/a/b")), Ordering::Greater);
        // Except that a trailing `**`, which also matches zero segments,
        // ranks below having no further segment.
        assert_eq!(t("/a").specificity_cmp(&t("/a/**")), Ordering::Greater);
    }

    #[test]
    fn specificity_verb_first() {
        let with_verb = t("/v1/things/{id}:undelete");
        let without = t("/v1/things/{id}");
        assert_eq!(with_verb.specificity_cmp(&without), Ordering::Greater);
        assert_eq!(without.specificity_cmp(&with_verb), Ordering::Less);
        // Both match this path; the verb template is preferred.
        assert!(with_verb.matches("/v1/things/x:undelete").is_some());
        assert!(without.matches("/v1/things/x:undelete").is_some());
    }

    #[test]
    fn specificity_equal_and_patterns_flattened() {
        assert_eq!(t("/a/{x}").specificity_cmp(&t("/a/*")), Ordering::Equal);
        assert_eq!(t("/v1/{name=shelves/*}").specificity_cmp(&t("/v1/shelves/{id}")), Ordering::Equal);
        assert_eq!(t("/v1/{name=shelves/*}").specificity_cmp(&t("/v1/{name=*/*}")), Ordering::Greater);
    }

    #[test]
    fn specificity_sorts_candidates() {
        let mut templates = [
            t("/organizations/**"),
            t("/organizations/{id}"),
            t("/organizations/search"),
            t("/organizations/{id}:archive"),
            t("/organizations/{id=*}/members"),
        ];
        templates.sort_by(|a, b| b.specificity_cmp(a));
        let order: Vec<&str> = templates.iter().map(Template::as_str).collect();
        assert_eq!(
            order,
            vec![
                "/organizations/{id}:archive",
                "/organizations/search",
                "/organizations/{id=*}/members",
                "/organizations/{id}",
                "/organizations/**",
            ]
        );
    }
}
