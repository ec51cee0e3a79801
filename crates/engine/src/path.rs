//! API path patterns of organization definitions (Part B §3.4): `/workspaces/*/channels/**`,
//! where `*` stands for exactly one segment and `**` for one or more. [`path_pattern`] is
//! what write-time validation asks; [`PathPattern`] is the same text read for matching.

/// The longest pattern a definition holds.
const MAX_PATTERN: usize = 512;

/// What is wrong with an API path pattern, if anything: it starts with `/`, its segments are
/// not empty, and `*` (one segment) and `**` (one or more) stand for whole segments.
pub fn path_pattern(pattern: &str) -> Option<String> {
    if pattern.len() > MAX_PATTERN {
        return Some(format!("a resource pattern has at most {MAX_PATTERN} characters"));
    }
    let Some(rest) = pattern.strip_prefix('/') else {
        return Some(format!("`{pattern}` is not an API path: it must start with `/`"));
    };
    if rest.is_empty() {
        return None;
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Some(format!("`{pattern}` has an empty path segment"));
        }
        if segment.contains('*') && segment != "*" && segment != "**" {
            return Some(format!(
                "`{pattern}`: `*` and `**` stand for whole path segments (`/a/*/b`), not part of one (`{segment}`)"
            ));
        }
        if segment.contains(['{', '}']) {
            return Some(format!("`{pattern}`: write `*` for a path variable such as `{segment}`"));
        }
        if let Some(c) = segment.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#')) {
            return Some(format!("`{pattern}` holds `{}`, which cannot appear in an API path", c.escape_default()));
        }
    }
    None
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `*`
    One,
    /// `**`
    OneOrMore,
}

/// A path pattern read for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PathPattern(Box<[Segment]>);

impl PathPattern {
    /// Reads a pattern; one that is not a path (validation keeps these out) matches nothing.
    pub(crate) fn new(pattern: &str) -> Option<PathPattern> {
        let rest = pattern.strip_prefix('/')?;
        let segments = segments(rest)
            .map(|segment| match segment {
                "*" => Segment::One,
                "**" => Segment::OneOrMore,
                literal => Segment::Literal(literal.into()),
            })
            .collect();
        Some(PathPattern(segments))
    }

    /// Whether the concrete `path` (starting with `/`) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else { return false };
        let path: Vec<&str> = segments(rest).collect();
        // reach[j]: the pattern so far can end just before path segment j.
        let mut reach = vec![false; path.len() + 1];
        if let Some(first) = reach.first_mut() {
            *first = true;
        }
        for segment in self.0.iter() {
            let mut next = vec![false; path.len() + 1];
            let mut carried = false;
            for j in 0..path.len() {
                let here = reach.get(j).copied().unwrap_or(false);
                let fits = match segment {
                    Segment::Literal(literal) => path.get(j).is_some_and(|s| **s == **literal),
                    Segment::One | Segment::OneOrMore => true,
                };
                // `**` may go on taking segments after its first.
                carried = matches!(segment, Segment::OneOrMore) && (carried || here);
                let step = match segment {
                    Segment::OneOrMore => carried,
                    _ => here && fits,
                };
                if step && let Some(slot) = next.get_mut(j + 1) {
                    *slot = true;
                }
            }
            reach = next;
        }
        reach.last().copied().unwrap_or(false)
    }
}

/// The segments after the leading `/`; `/` alone has none.
fn segments(rest: &str) -> impl Iterator<Item = &str> {
    rest.split('/').filter(|_| !rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_paths_with_whole_segment_wildcards() {
        for good in ["/", "/**", "/workspaces/*/channels", "/workspaces/*/channels/**", "/a/**/b", "/a-b_c.d~e"] {
            assert_eq!(path_pattern(good), None, "{good}");
        }
        for bad in ["", "workspaces", "/a//b", "/a/", "/a*/b", "/a/***", "/{workspaceID}/x", "/a b", "/a?b"] {
            assert!(path_pattern(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn one_star_is_one_segment_and_two_are_one_or_more() {
        let cases = [
            ("/", "/", true),
            ("/", "/a", false),
            ("/**", "/", false),
            ("/**", "/a", true),
            ("/**", "/a/b/c", true),
            ("/workspaces/*/channels", "/workspaces/w1/channels", true),
            ("/workspaces/*/channels", "/workspaces/channels", false),
            ("/workspaces/*/channels", "/workspaces/w1/w2/channels", false),
            ("/workspaces/*/channels/**", "/workspaces/w1/channels", false),
            ("/workspaces/*/channels/**", "/workspaces/w1/channels/c1", true),
            ("/workspaces/*/channels/**", "/workspaces/w1/channels/c1/messages", true),
            ("/a/**/b", "/a/x/b", true),
            ("/a/**/b", "/a/x/y/b", true),
            ("/a/**/b", "/a/b", false),
            ("/a/**/b/**", "/a/b/b/b", true),
            ("/a/*", "/a", false),
            ("/a", "/a", true),
            ("/a", "/A", false),
        ];
        for (pattern, path, want) in cases {
            let compiled = PathPattern::new(pattern).unwrap();
            assert_eq!(compiled.matches(path), want, "{pattern} {path}");
        }
    }
}
