//! `conditionsAll` (api-reference A.5): tests of a check's context, read once when a policy
//! is indexed. Values are written as strings; the numeric, bool, CIDR and date operators
//! read them here, and [`readable`] is what write-time validation asks, so a value that is
//! stored is one that is evaluated.
//!
//! A test that cannot be evaluated (the key is missing, or the context's value is not one
//! the operator reads) makes its whole statement unevaluable, which fails closed: an ALLOW
//! does not match and a DENY does. An `…IfExists` operator holds where its key is missing
//! instead, and otherwise tests as its plain form.
//!
//! Conditions see strings, numbers, booleans and `null`; a list or an object
//! ([`Value::Composite`]) is as if the key were missing.

use std::net::IpAddr;

use crate::{Condition, Context, Quantifier, Test};

/// The operators: each plain form with its JSON name, and its `…IfExists` form, named with
/// the suffix. One table gives the enum, [`Operator::ALL`], [`Operator::name`] and
/// [`Operator::plain`].
macro_rules! operators {
    ($($(#[$doc:meta])* $plain:ident / $if_exists:ident = $name:literal,)*) => {
        /// A condition's test. Each has an `…IfExists` form, as AWS IAM's operators do: it
        /// holds when the context lacks the key, and otherwise tests as the plain form
        /// ([`Operator::plain`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Operator {
            $($(#[$doc])* $plain,)*
            $($if_exists,)*
        }

        impl Operator {
            /// Every operator, plain forms first, in the order a message offers their names.
            pub const ALL: &'static [Operator] = &[$(Operator::$plain,)* $(Operator::$if_exists,)*];

            /// How a policy's JSON spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operator::$plain => $name, Operator::$if_exists => concat!($name, "IfExists"),)*
                }
            }

            /// The form without `IfExists`: how a present value is tested and an operand read.
            pub fn plain(self) -> Operator {
                match self {
                    $(Operator::$plain | Operator::$if_exists => Operator::$plain,)*
                }
            }
        }
    };
}

operators! {
    StringEquals / StringEqualsIfExists = "stringEquals",
    StringNotEquals / StringNotEqualsIfExists = "stringNotEquals",
    /// `*` matches any run of characters, the empty one too.
    StringLike / StringLikeIfExists = "stringLike",
    NumericEquals / NumericEqualsIfExists = "numericEquals",
    NumericLessThan / NumericLessThanIfExists = "numericLessThan",
    NumericGreaterThan / NumericGreaterThanIfExists = "numericGreaterThan",
    /// A JSON boolean, or the string `true` or `false`.
    Bool / BoolIfExists = "bool",
    /// The context's address lies in the block.
    IpAddress / IpAddressIfExists = "ipAddress",
    DateBefore / DateBeforeIfExists = "dateBefore",
    DateAfter / DateAfterIfExists = "dateAfter",
}

impl Operator {
    /// The operator a policy's JSON names (`stringEquals`, `boolIfExists`, …), if any: the
    /// inverse of [`Operator::name`], so validation and output share one spelling.
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.iter().copied().find(|operator| operator.name() == name)
    }

    /// Whether it is an `…IfExists` form, which holds where the context lacks its key.
    pub fn if_exists(self) -> bool {
        self.plain() != self
    }
}

/// A value of a check's context.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// A list or an object, which conditions do not see: a key holding one is as if missing.
    Composite,
}

/// Why `operator` cannot read `value`, if it cannot.
pub fn readable(operator: Operator, value: &str) -> Option<String> {
    use Operator::*;
    match operator.plain() {
        StringEquals | StringNotEquals | StringLike => None,
        NumericEquals | NumericLessThan | NumericGreaterThan => {
            number(value).is_none().then(|| format!("`{value}` is not a number"))
        }
        Bool => boolean(value).is_none().then(|| format!("`{value}` is not `true` or `false`")),
        IpAddress => cidr(value).is_none().then(|| format!("`{value}` is not an IP address or CIDR block")),
        DateBefore | DateAfter => date(value)
            .is_none()
            .then(|| format!("`{value}` is not an RFC 3339 date-time, such as 2025-02-21T18:11:52Z")),
        // `plain` answers none of these.
        _ => None,
    }
}

/// What one condition, or all of a statement's, came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Holds,
    Fails,
    /// A key is missing (for a plain operator) or its value unreadable: fail closed.
    Unknown,
}

/// A test read once: its operand parsed for its operator.
#[derive(Clone, Debug)]
enum Operand {
    Text(Box<str>),
    Number(f64),
    Bool(bool),
    Block(IpAddr, u8),
    /// Nanoseconds since the epoch.
    Date(i128),
    /// Stored, but unreadable by its operator (validation keeps these out): never holds.
    Unreadable,
}

#[derive(Clone, Debug)]
struct CompiledTest {
    /// The plain form: how a present value is tested.
    operator: Operator,
    /// Whether a missing key holds rather than being unknown.
    if_exists: bool,
    key: Box<str>,
    operand: Operand,
}

/// A statement's conditions, read once.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conditions(Box<[(Quantifier, Box<[CompiledTest]>)]>);

impl Conditions {
    /// Whether there are none, which always hold: a check skips evaluating them.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn compile(conditions: &[Condition]) -> Conditions {
        Conditions(
            conditions
                .iter()
                .map(|condition| (condition.quantifier, condition.tests.iter().map(compile).collect()))
                .collect(),
        )
    }

    /// Every condition against `context`.
    pub(crate) fn evaluate(&self, context: &Context) -> Outcome {
        let mut all = true;
        for (quantifier, tests) in self.0.iter() {
            let mut any = false;
            let mut every = true;
            for test in tests.iter() {
                match test.evaluate(context) {
                    Outcome::Unknown => return Outcome::Unknown,
                    Outcome::Holds => any = true,
                    Outcome::Fails => every = false,
                }
            }
            let holds = match quantifier {
                Quantifier::All => every,
                Quantifier::Any => any,
            };
            all &= holds;
        }
        if all { Outcome::Holds } else { Outcome::Fails }
    }
}

fn compile(test: &Test) -> CompiledTest {
    use Operator::*;
    let text = test.value.as_str();
    let operator = test.operator.plain();
    let operand = match operator {
        StringEquals | StringNotEquals | StringLike => Some(Operand::Text(text.into())),
        NumericEquals | NumericLessThan | NumericGreaterThan => number(text).map(Operand::Number),
        Bool => boolean(text).map(Operand::Bool),
        IpAddress => cidr(text).map(|(address, prefix)| Operand::Block(address, prefix)),
        DateBefore | DateAfter => date(text).map(Operand::Date),
        // `plain` answers none of these.
        _ => None,
    };
    CompiledTest {
        operator,
        if_exists: test.operator.if_exists(),
        key: test.key.as_str().into(),
        operand: operand.unwrap_or(Operand::Unreadable),
    }
}

impl CompiledTest {
    fn evaluate(&self, context: &Context) -> Outcome {
        use Operator::*;
        // An operand validation refuses never holds, not even where the key is missing.
        if matches!(self.operand, Operand::Unreadable) {
            return Outcome::Unknown;
        }
        let value = match context.get(&*self.key) {
            None | Some(Value::Composite) if self.if_exists => return Outcome::Holds,
            None | Some(Value::Composite) => return Outcome::Unknown,
            Some(value) => value,
        };
        let holds = match (&self.operand, self.operator) {
            (Operand::Text(want), StringEquals) => text_of(value).map(|have| have == &**want),
            (Operand::Text(want), StringNotEquals) => text_of(value).map(|have| have != &**want),
            (Operand::Text(pattern), StringLike) => text_of(value).map(|have| glob(pattern, have)),
            (Operand::Number(want), NumericEquals) => number_of(value).map(|have| have == *want),
            (Operand::Number(want), NumericLessThan) => number_of(value).map(|have| have < *want),
            (Operand::Number(want), NumericGreaterThan) => number_of(value).map(|have| have > *want),
            (Operand::Bool(want), Bool) => bool_of(value).map(|have| have == *want),
            (Operand::Block(block, prefix), IpAddress) => {
                text_of(value).and_then(|have| have.parse::<IpAddr>().ok()).map(|have| within(have, *block, *prefix))
            }
            (Operand::Date(want), DateBefore) => text_of(value).and_then(date).map(|have| have < *want),
            (Operand::Date(want), DateAfter) => text_of(value).and_then(date).map(|have| have > *want),
            _ => None,
        };
        match holds {
            Some(true) => Outcome::Holds,
            Some(false) => Outcome::Fails,
            None => Outcome::Unknown,
        }
    }
}

fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// A JSON number, or a string holding one (contexts often carry numbers as text).
fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) if n.is_finite() => Some(*n),
        Value::String(text) => number(text),
        _ => None,
    }
}

fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) => boolean(text),
        _ => None,
    }
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Nanoseconds since the epoch, as exact as RFC 3339 writes them.
fn date(text: &str) -> Option<i128> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos()))
}

/// An address and prefix length: `10.0.0.0/8`, `2001:db8::/32`, or one address.
pub(crate) fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse::<u8>().ok()?,
        Some(_) => return None,
    };
    (prefix <= max).then_some((address, prefix))
}

/// Whether `address` lies in `block/prefix`; an address of the other family never does.
fn within(address: IpAddr, block: IpAddr, prefix: u8) -> bool {
    let (have, want, bits) = match (address, block) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)) << 96, u128::from(u32::from(b)) << 96, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix.min(bits));
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - prefix);
    have & mask == want & mask
}

/// `*` matches any run of characters; everything else matches itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p.get(pi) == Some(&b'*') {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p.get(pi) == t.get(ti) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&b| b == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(pairs: &[(&str, Value)]) -> Context {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn one(operator: Operator, key: &str, value: &str) -> Conditions {
        let test = Test { operator, key: key.into(), value: value.into() };
        Conditions::compile(&[Condition { quantifier: Quantifier::All, tests: vec![test] }])
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn each_operator_holds_fails_or_cannot_be_evaluated() {
        use Operator::*;
        use Outcome::*;
        let cases: &[(Operator, &str, Value, Outcome)] = &[
            (StringEquals, "sms", s("sms"), Holds),
            (StringEquals, "sms", s("SMS"), Fails),
            (StringEquals, "5", Value::Number(5.0), Unknown),
            (StringNotEquals, "sms", s("email"), Holds),
            (StringNotEquals, "sms", s("sms"), Fails),
            (StringLike, "/a/*", s("/a/b/c"), Holds),
            (StringLike, "a*c*e", s("abcde"), Holds),
            (StringLike, "a*c", s("abcd"), Fails),
            (StringLike, "*", s(""), Holds),
            (NumericEquals, "10", Value::Number(10.0), Holds),
            (NumericEquals, "10", s("10.0"), Holds),
            (NumericLessThan, "10.5", Value::Number(10.0), Holds),
            (NumericLessThan, "10", Value::Number(10.0), Fails),
            (NumericGreaterThan, "10", Value::Number(11.0), Holds),
            (NumericGreaterThan, "10", s("ten"), Unknown),
            (NumericEquals, "1", Value::Bool(true), Unknown),
            (Bool, "true", Value::Bool(true), Holds),
            (Bool, "true", s("false"), Fails),
            (Bool, "true", s("yes"), Unknown),
            (IpAddress, "10.0.0.0/8", s("10.1.2.3"), Holds),
            (IpAddress, "10.0.0.0/8", s("11.1.2.3"), Fails),
            (IpAddress, "10.0.0.0/8", s("::1"), Fails),
            (IpAddress, "2001:db8::/32", s("2001:db8::1"), Holds),
            (IpAddress, "0.0.0.0/0", s("1.2.3.4"), Holds),
            (IpAddress, "10.0.0.1", s("10.0.0.1"), Holds),
            (IpAddress, "10.0.0.0/8", s("10.0.0.0/8"), Unknown),
            (DateBefore, "2026-01-01T00:00:00Z", s("2025-12-31T23:59:59Z"), Holds),
            (DateBefore, "2026-01-01T00:00:00Z", s("2026-01-01T01:00:00+01:00"), Fails),
            (DateAfter, "2026-01-01T00:00:00Z", s("2026-01-01T00:00:01Z"), Holds),
            (DateAfter, "2026-01-01T00:00:00Z", s("tomorrow"), Unknown),
            (StringEquals, "x", Value::Null, Unknown),
            (StringEquals, "x", Value::Composite, Unknown),
        ];
        for (operator, operand, value, want) in cases {
            let got = one(*operator, "k", operand).evaluate(&context(&[("k", value.clone())]));
            assert_eq!(got, *want, "{operator:?} {operand} {value:?}");
        }
        assert_eq!(one(StringEquals, "k", "x").evaluate(&Context::new()), Unknown, "a missing key");
        // Keys are verbatim: a dot is an ordinary character.
        let dotted = context(&[("request.channel", s("sms"))]);
        assert_eq!(one(StringEquals, "request.channel", "sms").evaluate(&dotted), Holds);
    }

    #[test]
    fn if_exists_forms_hold_where_the_key_is_missing_and_test_as_the_plain_form_elsewhere() {
        use Operator::*;
        use Outcome::*;
        let cases: &[(Operator, &str, Option<Value>, Outcome)] = &[
            (StringEqualsIfExists, "sms", None, Holds),
            (StringEqualsIfExists, "sms", Some(Value::Composite), Holds),
            (StringEqualsIfExists, "sms", Some(s("sms")), Holds),
            (StringEqualsIfExists, "sms", Some(s("email")), Fails),
            // Present but unreadable: as the plain form, unknown.
            (StringEqualsIfExists, "sms", Some(Value::Number(5.0)), Unknown),
            (StringEqualsIfExists, "sms", Some(Value::Null), Unknown),
            (StringNotEqualsIfExists, "sms", None, Holds),
            (StringNotEqualsIfExists, "sms", Some(s("sms")), Fails),
            (StringLikeIfExists, "s*", None, Holds),
            (StringLikeIfExists, "s*", Some(s("email")), Fails),
            (NumericEqualsIfExists, "10", None, Holds),
            (NumericEqualsIfExists, "10", Some(s("10.0")), Holds),
            (NumericEqualsIfExists, "10", Some(s("ten")), Unknown),
            // An operand no validation would store never holds.
            (NumericEqualsIfExists, "ten", None, Unknown),
            (NumericLessThanIfExists, "10", Some(Value::Number(11.0)), Fails),
            (NumericGreaterThanIfExists, "10", Some(Value::Composite), Holds),
            (BoolIfExists, "true", None, Holds),
            (BoolIfExists, "true", Some(Value::Bool(false)), Fails),
            (BoolIfExists, "true", Some(s("true")), Holds),
            (BoolIfExists, "true", Some(s("yes")), Unknown),
            (IpAddressIfExists, "10.0.0.0/8", None, Holds),
            (IpAddressIfExists, "10.0.0.0/8", Some(s("11.0.0.1")), Fails),
            (DateBeforeIfExists, "2026-01-01T00:00:00Z", None, Holds),
            (DateAfterIfExists, "2026-01-01T00:00:00Z", Some(s("2025-01-01T00:00:00Z")), Fails),
        ];
        for (operator, operand, value, want) in cases {
            let ctx = context(&value.iter().map(|v| ("k", v.clone())).collect::<Vec<_>>());
            let got = one(*operator, "k", operand).evaluate(&ctx);
            assert_eq!(got, *want, "{operator:?} {operand} {value:?}");
        }
    }

    #[test]
    fn each_operator_has_one_spelling_and_one_plain_form() {
        for &operator in Operator::ALL {
            assert_eq!(Operator::from_name(operator.name()), Some(operator), "{operator:?}");
            let plain = operator.plain();
            assert!(!plain.if_exists(), "{operator:?}");
            assert_eq!(plain.plain(), plain);
            if operator.if_exists() {
                assert_eq!(operator.name(), format!("{}IfExists", plain.name()));
            }
        }
        let mut names: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operator::ALL.len());
        // Ten plain forms, each with its `…IfExists` form.
        assert_eq!(Operator::ALL.iter().filter(|o| o.if_exists()).count(), 10);
        assert_eq!(Operator::from_name("stringEqualsIfExists"), Some(Operator::StringEqualsIfExists));
        assert_eq!(Operator::from_name("bool"), Some(Operator::Bool));
        for unknown in ["", "StringEquals", "stringequals", "stringEqualsIfexists", "ifExists", "bool "] {
            assert_eq!(Operator::from_name(unknown), None, "{unknown}");
        }
        assert!(readable(Operator::NumericEqualsIfExists, "ten").is_some());
        assert_eq!(readable(Operator::DateAfterIfExists, "2026-01-01T00:00:00Z"), None);
    }

    #[test]
    fn all_and_any_combine_their_tests_and_every_condition_must_hold() {
        let test =
            |key: &str, value: &str| Test { operator: Operator::StringEquals, key: key.into(), value: value.into() };
        let all = Condition { quantifier: Quantifier::All, tests: vec![test("a", "1"), test("b", "2")] };
        let any = Condition { quantifier: Quantifier::Any, tests: vec![test("a", "1"), test("b", "2")] };
        let ctx = context(&[("a", s("1")), ("b", s("3"))]);
        assert_eq!(Conditions::compile(std::slice::from_ref(&all)).evaluate(&ctx), Outcome::Fails);
        assert_eq!(Conditions::compile(std::slice::from_ref(&any)).evaluate(&ctx), Outcome::Holds);
        assert_eq!(Conditions::compile(&[any.clone(), all]).evaluate(&ctx), Outcome::Fails);
        // One unreadable test makes the whole statement unevaluable, even under `any`.
        let partial = context(&[("a", s("1"))]);
        assert_eq!(Conditions::compile(&[any]).evaluate(&partial), Outcome::Unknown);
        assert_eq!(Conditions::compile(&[]).evaluate(&partial), Outcome::Holds);
    }

    #[test]
    fn values_are_read_as_write_time_validation_reads_them() {
        assert_eq!(readable(Operator::NumericEquals, "10.5"), None);
        assert!(readable(Operator::NumericEquals, "ten").is_some());
        assert!(readable(Operator::NumericEquals, "inf").is_some());
        assert!(readable(Operator::Bool, "yes").is_some());
        assert!(readable(Operator::IpAddress, "10.0.0.0/33").is_some());
        assert!(readable(Operator::DateAfter, "yesterday").is_some());
        assert_eq!(cidr("10.0.0.0/8"), Some(("10.0.0.0".parse().unwrap(), 8)));
        for bad in ["10.0.0.0/", "10.0.0.0/+8", "10.0.0/8", "fe80::/129", "x"] {
            assert_eq!(cidr(bad), None, "{bad}");
        }
    }
}
