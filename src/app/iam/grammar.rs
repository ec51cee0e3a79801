//! The IAM v2 input grammar (api-reference Part B §2.4–§2.6, with A.6's changes): ids,
//! member expressions, actions and resources. Each check answers `None` when the text is
//! valid, or why it is not; the use cases name the field.

/// The member providers of `user:<provider>:<name>` and `team:<provider>:<name>`.
const PROVIDERS: [&str; 4] = ["local", "ldap", "saml", "oidc"];

/// The one variable a resource may hold.
const USERNAME_VARIABLE: &str = "${a2:username}";

/// An id of a policy or role (1–64) or a tenant (1–48): letters, digits, `_` and `-`.
pub fn id(text: &str, max: usize) -> Option<String> {
    let ok =
        (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (!ok).then(|| format!("`{text}` is not an id: use 1 to {max} letters, digits, `_` or `-`"))
}

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
/// `svc:type:*`. Segments start with a lowercase letter and are otherwise letters; a verb
/// may hold `-` too.
pub fn action(text: &str) -> Option<String> {
    let word = |s: &str, dash: bool| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_alphabetic() || (dash && c == '-'))
    };
    let ok = match text.split(':').collect::<Vec<_>>()[..] {
        ["*"] => true,
        ["*", verb] => word(verb, true),
        [service, "*"] => word(service, false),
        [service, "*", verb] => word(service, false) && word(verb, true),
        [service, kind, "*"] => word(service, false) && word(kind, false),
        [service, kind, verb] => word(service, false) && word(kind, false) && word(verb, true),
        _ => false,
    };
    (!ok).then(|| {
        format!("`{text}` is not an action: use `service:type:verb`, or `*`, `*:verb`, `service:*`, `service:*:verb` or `service:type:*`")
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_letters_digits_underscores_and_dashes() {
        for good in ["myRole", "viewer", "a", "tenant_1-x", &"x".repeat(64)] {
            assert_eq!(id(good, 64), None, "{good}");
        }
        for bad in ["", "has space", "a:b", "ü", &"x".repeat(65)] {
            assert!(id(bad, 64).is_some(), "{bad}");
        }
        assert!(id(&"x".repeat(49), 48).is_some());
    }

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
        ] {
            assert_eq!(action(good), None, "{good}");
        }
        for bad in [
            "",
            "iam",
            "iam:policies",
            "Iam:policies:get",
            "iam:*:*",
            "*:*",
            "iam:po1icies:get",
            "a:b:c:d",
            "iam:p*:get",
        ] {
            assert!(action(bad).is_some(), "{bad}");
        }
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
