//! The grammar of what policies and checks hold (api-reference Part B §2.5–§2.6, with A.6's
//! changes): member expressions, actions and resources, the patterns a statement names and
//! the concrete values a check names. Each function answers `None` when the text is valid,
//! or why it is not; callers name the field. The index reads the same shapes, so what is
//! written is what is decided.

/// The member providers of `user:<provider>:<name>` and `team:<provider>:<name>`.
pub(crate) const PROVIDERS: [&str; 4] = ["local", "ldap", "saml", "oidc"];

/// The one variable a resource may hold: the name of the checking user.
pub const USERNAME_VARIABLE: &str = "${a2:username}";

/// A member expression (§2.5, with `oidc` as a fourth provider).
pub fn member(text: &str) -> Option<String> {
    let ok = match text.split(':').collect::<Vec<_>>()[..] {
        ["*"] | ["user" | "team" | "token" | "tls", "*"] => true,
        ["user" | "team", provider, name] => PROVIDERS.contains(&provider) && member_name(provider, name),
        ["token", id] => plain(id),
        ["tls", "service", service] => plain(service) || service == "*",
        ["tls", "service", service, cn] => plain(service) && (plain(cn) || cn == "*"),
        _ => false,
    };
    (!ok).then(|| {
        format!(
            "`{text}` is not a member expression: use `user:<provider>:<name>`, `team:<provider>:<name>` \
             (providers local, ldap, saml, oidc; `*` for every one), `token:<id>`, `tls:service:<name>[:<cn>]`, \
             `user:*`, `team:*`, `token:*`, `tls:*` or `*`"
        )
    })
}

/// A member's name: `*` for every one of the provider, else no `:` or `*` (A.6: OIDC names
/// percent-encode `:`, `*` and spaces, so they hold no raw space either).
fn member_name(provider: &str, name: &str) -> bool {
    name == "*" || (plain(name) && !(provider == "oidc" && name.contains(' ')))
}

fn plain(segment: &str) -> bool {
    !segment.is_empty() && !segment.contains(['*', ':'])
}

/// An action (§2.6): `svc:type:verb`, or one of `*`, `*:verb`, `svc:*`, `svc:*:verb`,
/// `svc:type:*`. Every segment starts with an ASCII letter and holds ASCII letters, digits,
/// `_`, `-` and `.`: what OpenID AuthZEN action names hold (`authzen:record:can_read_todos`,
/// `myapp:Doc:v1.read`), and never `:` or `*`, which the index reads as structure.
pub fn action(text: &str) -> Option<String> {
    let ok = match text.split(':').collect::<Vec<_>>()[..] {
        ["*"] => true,
        ["*", verb] => segment(verb),
        [service, "*"] => segment(service),
        [service, "*", verb] => segment(service) && segment(verb),
        [service, kind, "*"] => segment(service) && segment(kind),
        [service, kind, verb] => segment(service) && segment(kind) && segment(verb),
        _ => false,
    };
    (!ok).then(|| {
        format!(
            "`{text}` is not an action: use `service:type:verb`, or `*`, `*:verb`, `service:*`, `service:*:verb` \
             or `service:type:*`, each segment a letter followed by letters, digits, `_`, `-` or `.`"
        )
    })
}

/// One segment of an action: an ASCII letter, then ASCII letters, digits, `_`, `-` or `.`.
fn segment(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A resource (§2.6): `*`, or `:`-separated segments, the first starting with a lowercase
/// letter, none holding `*`, with an optional trailing `:*`; `${a2:username}` may stand for
/// a segment.
pub fn resource(text: &str) -> Option<String> {
    let ok = text == "*" || {
        let body = text.strip_suffix(":*").unwrap_or(text);
        let segments: Vec<&str> = split_resource(body);
        let first_ok = segments.first().and_then(|s| s.chars().next()).is_some_and(|c| c.is_ascii_lowercase());
        first_ok && segments.iter().all(|s| *s == USERNAME_VARIABLE || plain(s))
    };
    (!ok).then(|| {
        format!(
            "`{text}` is not a resource: use `*`, or segments such as `iam:policies:p1`, with an optional trailing `:*`"
        )
    })
}

/// Splits at the colons outside `${a2:username}`.
fn split_resource(text: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(USERNAME_VARIABLE) {
            i += USERNAME_VARIABLE.len();
        } else if text.as_bytes()[i] == b':' {
            segments.push(&text[start..i]);
            i += 1;
            start = i;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    segments.push(&text[start..]);
    segments
}

/// A subject a check names: a member expression without wildcards.
pub fn subject(text: &str) -> Option<String> {
    if text.contains('*') || member(text).is_some() {
        return Some(format!(
            "`{text}` is not a subject: use `user:<provider>:<name>`, `team:<provider>:<name>`, `token:<id>` \
             or `tls:service:<name>[:<cn>]`, without wildcards"
        ));
    }
    None
}

/// A team subject a check names: `team:<provider>:<name>`, without wildcards.
pub fn team(text: &str) -> Option<String> {
    if !text.starts_with("team:") || subject(text).is_some() {
        return Some(format!("`{text}` is not a team: use `team:<provider>:<name>`, such as `team:local:eng`"));
    }
    None
}

/// An action a check names: `service:type:verb`, without wildcards.
pub fn concrete_action(text: &str) -> Option<String> {
    if text.contains('*') || action(text).is_some() {
        return Some(format!(
            "`{text}` is not an action: use `service:type:verb` without wildcards, each segment a letter followed \
             by letters, digits, `_`, `-` or `.`"
        ));
    }
    None
}

/// A colon resource a check names: segments such as `iam:policies:p1`, without wildcards or
/// variables.
pub fn concrete_resource(text: &str) -> Option<String> {
    if text.contains('*') || text.contains("${") || resource(text).is_some() {
        return Some(format!(
            "`{text}` is not a resource: use segments such as `iam:policies:p1` (no wildcards or variables), \
             or an API path starting with `/`"
        ));
    }
    None
}

/// An API path a check names: `/`, or segments after it that are not empty and hold no `*`.
pub fn concrete_path(text: &str) -> Option<String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Some(format!("`{text}` is not an API path: it must start with `/`"));
    };
    if rest.is_empty() {
        return None;
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Some(format!("`{text}` has an empty path segment"));
        }
        if segment.contains('*') {
            return Some(format!("`{text}` is a pattern: a check names one path, without `*`"));
        }
        if let Some(c) = segment.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#')) {
            return Some(format!("`{text}` holds `{}`, which cannot appear in an API path", c.escape_default()));
        }
    }
    None
}

/// The `<name>` of a `user:<provider>:<name>` subject, which `${a2:username}` stands for.
pub fn username(subject: &str) -> Option<&str> {
    let rest = subject.strip_prefix("user:")?;
    let (_, name) = rest.split_once(':')?;
    (!name.is_empty() && !name.contains([':', '*'])).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_follow_the_grammar() {
        for good in [
            "*",
            "user:*",
            "team:*",
            "token:*",
            "tls:*",
            "user:local:alice",
            "user:local:newuser",
            "team:ldap:*",
            "team:saml:editors team",
            "user:oidc:abc%3Adef",
            "team:oidc:ops",
            "token:my-token",
            "tls:service:deployment-service",
            "tls:service:deployment-service:*",
            "tls:service:svc:cn1",
            "tls:service:*",
        ] {
            assert_eq!(member(good), None, "{good}");
        }
        for bad in [
            "",
            "alice",
            "user:github:alice",
            "user:local:",
            "user:local:a:b",
            "user:local:a*",
            "user:oidc:has space",
            "team:local",
            "token:",
            "token:a:b",
            "service:*",
            "tls:service:",
            "User:local:alice",
        ] {
            assert!(member(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn actions_follow_the_grammar() {
        for good in [
            "*",
            "*:get",
            "*:get-all",
            "iam:*",
            "iam:*:list",
            "iam:policies:*",
            "iam:policyMembers:get",
            "infra:nodes:rerun-x",
            // OpenID AuthZEN's names: upper case, digits, `_`, `-` and `.` in any segment.
            "authzen:record:can_read_todos",
            "myapp:Doc:v1.read",
            "Iam:policies:get",
            "iam:po1icies:get",
            "a1_b-c.d:T2_x-y.z:v3_r-s.t",
            "*:v1.read",
            "myapp:*",
            "my-app.v2:*:can_read",
            "myapp:Doc:*",
            "a:b:c",
        ] {
            assert_eq!(action(good), None, "{good}");
        }
        for bad in [
            "",
            "iam",
            "iam:policies",
            "iam:*:*",
            "*:*",
            "a:b:c:d",
            "iam:p*:get",
            "iam::get",
            "iam:users:",
            ":users:get",
            "1am:users:get",
            "iam:_users:get",
            "iam:users:-get",
            "iam:users:.get",
            "iam:users:get read",
            "iam:users:get/read",
            "iam:us\u{e9}rs:get",
            "*:1get",
            "_x:*",
        ] {
            assert!(action(bad).is_some(), "{bad}");
        }
        assert!(action("iam:users:_get").is_some_and(|why| why.contains("digits, `_`, `-` or `.`")));
    }

    #[test]
    fn checks_name_concrete_values() {
        for good in ["user:local:alice", "team:oidc:ops", "token:t1", "tls:service:svc:cn", "tls:service:svc"] {
            assert_eq!(subject(good), None, "{good}");
        }
        for bad in ["*", "user:*", "user:local:*", "tls:service:svc:*", "user:x:y", ""] {
            assert!(subject(bad).is_some(), "{bad}");
        }
        assert_eq!(team("team:local:eng"), None);
        assert!(team("user:local:eng").is_some());
        assert!(team("team:local:*").is_some());
        for good in ["iam:users:get", "authzen:record:can_read_todos", "myapp:Doc:v1.read", "A:B:C"] {
            assert_eq!(concrete_action(good), None, "{good}");
        }
        for bad in ["*", "iam:*", "iam:users:*", "*:v1.read", "view", "", "myapp:Doc:1.read", "myapp:Doc:v1*"] {
            assert!(concrete_action(bad).is_some(), "{bad}");
        }
        assert_eq!(concrete_resource("iam:users:bob"), None);
        for bad in ["*", "iam:users:*", "iam:users:${a2:username}", "/x", ""] {
            assert!(concrete_resource(bad).is_some(), "{bad}");
        }
        for good in ["/", "/workspaces/w1/channels", "/a.b-c"] {
            assert_eq!(concrete_path(good), None, "{good}");
        }
        for bad in ["", "x", "/a//b", "/a/", "/a/*", "/a/**", "/a b"] {
            assert!(concrete_path(bad).is_some(), "{bad}");
        }
        assert_eq!(username("user:local:alice"), Some("alice"));
        assert_eq!(username("user:oidc:a%3Ab"), Some("a%3Ab"));
        assert_eq!(username("team:local:alice"), None);
        assert_eq!(username("token:x"), None);
    }

    #[test]
    fn resources_follow_the_grammar() {
        for good in ["*", "iam:policies", "iam:policies:*", "iam:users:${a2:username}", "infra:nodes:n-1.example"] {
            assert_eq!(resource(good), None, "{good}");
        }
        for bad in ["", "Iam:x", "iam:*:x", "iam:b*", "iam::x", ":x", "*:x"] {
            assert!(resource(bad).is_some(), "{bad}");
        }
    }
}
