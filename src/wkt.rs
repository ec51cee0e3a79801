//! Well-known types with their canonical proto3 JSON forms, where pbjson-types has another:
//! build.rs maps them here for prost and pbjson alike. `Timestamp`: pbjson-types prints
//! `+00:00`. `FieldMask`: pbjson-types reads and writes `{"paths": [...]}`, not the one
//! string of lowerCamelCase paths that the mapping (and grpc-gateway) use.
//!
//! JSON prints the value gRPC carries, nothing cut: RFC 3339 in UTC with `Z` and 0, 3, 6 or
//! 9 fractional digits, the fewest that hold every non-zero digit. A whole second has no
//! fraction (`…:14Z`, not `…:14.000Z`), as the protobuf Go and C++ implementations print it;
//! the proto3 JSON mapping allows both.

use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::Micros;

/// The wrapper types, whose JSON form is their one `value` field's.
pub fn is_wrapper(full_name: &str) -> bool {
    matches!(
        full_name,
        "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int64Value"
            | "google.protobuf.UInt64Value"
            | "google.protobuf.Int32Value"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.BoolValue"
            | "google.protobuf.StringValue"
            | "google.protobuf.BytesValue"
    )
}

/// Well-known types whose JSON form is one string or number, which one query value sets.
pub fn is_one_scalar(full_name: &str) -> bool {
    matches!(full_name, "google.protobuf.Timestamp" | "google.protobuf.Duration" | "google.protobuf.FieldMask")
        || is_wrapper(full_name)
}

/// Seconds and nanoseconds since the Unix epoch, as on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    pub fn from_micros(micros: Micros) -> Self {
        Timestamp { seconds: micros.div_euclid(1_000_000), nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32 }
    }

    /// The instant in microseconds (nanoseconds below one cut off); `None` outside the
    /// range google/protobuf/timestamp.proto allows.
    pub fn to_micros(self) -> Option<Micros> {
        self.to_datetime()?;
        Some(self.seconds * 1_000_000 + i64::from(self.nanos / 1_000))
    }

    /// `None` outside what google/protobuf/timestamp.proto allows: years 0001 to 9999 and
    /// nanos in `0..1e9` (chrono would take more nanos as a leap second).
    fn to_datetime(self) -> Option<DateTime<Utc>> {
        const MIN_SECONDS: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
        const MAX_SECONDS: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let nanos = u32::try_from(self.nanos).ok().filter(|n| *n < 1_000_000_000)?;
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&self.seconds) {
            return None;
        }
        DateTime::from_timestamp(self.seconds, nanos)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = Rfc3339::default();
        self.write_rfc3339(&mut text).ok_or_else(|| serde::ser::Error::custom("timestamp out of range"))?;
        serializer.serialize_str(text.as_str())
    }
}

impl Timestamp {
    /// The canonical proto3 JSON form, its digits written by hand: every JSON answer prints
    /// two, and chrono's general formatter cost more than the rest of serializing the object.
    fn write_rfc3339(self, out: &mut Rfc3339) -> Option<()> {
        let at = self.to_datetime()?;
        out.number(u32::try_from(at.year()).ok()?, 4);
        out.byte(b'-');
        out.number(at.month(), 2);
        out.byte(b'-');
        out.number(at.day(), 2);
        out.byte(b'T');
        let second_of_day = at.num_seconds_from_midnight();
        out.number(second_of_day / 3600, 2);
        out.byte(b':');
        out.number(second_of_day / 60 % 60, 2);
        out.byte(b':');
        out.number(second_of_day % 60, 2);
        // 0, 3, 6 or 9 digits, the fewest that hold every non-zero one.
        match at.nanosecond() {
            0 => {}
            n if n % 1_000_000 == 0 => {
                out.byte(b'.');
                out.number(n / 1_000_000, 3);
            }
            n if n % 1_000 == 0 => {
                out.byte(b'.');
                out.number(n / 1_000, 6);
            }
            n => {
                out.byte(b'.');
                out.number(n, 9);
            }
        }
        out.byte(b'Z');
        Some(())
    }
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` at most: 30 bytes.
#[derive(Default)]
struct Rfc3339 {
    bytes: [u8; 30],
    len: usize,
}

impl Rfc3339 {
    fn byte(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `value` in `width` decimal digits, zero-padded.
    fn number(&mut self, mut value: u32, width: u32) {
        let start = self.len;
        for _ in 0..width {
            self.byte(b'0');
        }
        for at in (start..self.len).rev() {
            if let Some(slot) = self.bytes.get_mut(at) {
                *slot = b'0' + (value % 10) as u8;
            }
            value /= 10;
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation were written.
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp such as `2024-11-15T21:46:14.039Z`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Timestamp, E> {
                let parsed = DateTime::parse_from_rfc3339(s)
                    .map_err(|e| E::custom(format!("invalid timestamp `{s}`: {e}")))?
                    .with_timezone(&Utc);
                Ok(Timestamp { seconds: parsed.timestamp(), nanos: parsed.timestamp_subsec_nanos() as i32 })
            }
        }
        deserializer.deserialize_str(TimestampVisitor)
    }
}

/// The fields a partial update changes, as snake_case paths (`policy_ids`, `a.b_c`).
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct FieldMask {
    #[prost(string, repeated, tag = "1")]
    pub paths: Vec<String>,
}

impl Serialize for FieldMask {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let camel = |path: &String| path.split('.').map(lower_camel).collect::<Vec<_>>().join(".");
        serializer.serialize_str(&self.paths.iter().map(camel).collect::<Vec<_>>().join(","))
    }
}

impl<'de> Deserialize<'de> for FieldMask {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldMaskVisitor;
        impl Visitor<'_> for FieldMaskVisitor {
            type Value = FieldMask;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field mask such as `name,policyIds`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FieldMask, E> {
                let snake = |path: &str| path.split('.').map(snake_case).collect::<Vec<_>>().join(".");
                Ok(FieldMask { paths: s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(snake).collect() })
            }
        }
        deserializer.deserialize_str(FieldMaskVisitor)
    }
}

fn lower_camel(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut upper = false;
    for c in segment.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn snake_case(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 4);
    for c in segment.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_mask_is_one_string_of_lower_camel_case_paths() {
        let mask = FieldMask { paths: vec!["name".into(), "policy_ids".into(), "a.b_c".into()] };
        let json = serde_json::to_string(&mask).unwrap();
        assert_eq!(json, r#""name,policyIds,a.bC""#);
        assert_eq!(serde_json::from_str::<FieldMask>(&json).unwrap(), mask);
        assert_eq!(serde_json::from_str::<FieldMask>(r#""""#).unwrap().paths, Vec::<String>::new());
        assert!(serde_json::from_str::<FieldMask>(r#"{"paths": ["name"]}"#).is_err());
    }

    #[test]
    fn the_hand_written_form_is_chrono_s_to_the_digit() {
        use chrono::SecondsFormat;
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            seed >> 11
        };
        let edges = [-62_135_596_800, -1, 0, 1, 68_256_000, 951_782_400, 4_107_542_399, 253_402_300_799];
        for i in 0..2_000 {
            let seconds = match edges.get(i) {
                Some(edge) => *edge,
                None => (next() % 315_538_070_400) as i64 - 62_135_596_800,
            };
            let nanos = match i % 4 {
                0 => 0,
                1 => (next() % 1_000) as i32 * 1_000_000,
                2 => (next() % 1_000_000) as i32 * 1_000,
                _ => (next() % 1_000_000_000) as i32,
            };
            let ts = Timestamp { seconds, nanos };
            let expected = ts.to_datetime().unwrap().to_rfc3339_opts(SecondsFormat::AutoSi, true);
            assert_eq!(serde_json::to_value(ts).unwrap(), serde_json::json!(expected), "{seconds} {nanos}");
        }
    }

    fn printed(seconds: i64, nanos: i32) -> String {
        serde_json::to_value(Timestamp { seconds, nanos }).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn prints_the_fewest_of_0_3_6_or_9_digits_that_hold_the_value_in_utc() {
        let second = 1_731_707_174;
        assert_eq!(printed(second, 0), "2024-11-15T21:46:14Z");
        assert_eq!(printed(second, 39_000_000), "2024-11-15T21:46:14.039Z");
        assert_eq!(printed(second, 39_123_000), "2024-11-15T21:46:14.039123Z");
        assert_eq!(printed(second, 39_123_456), "2024-11-15T21:46:14.039123456Z");
        assert_eq!(printed(second, 1), "2024-11-15T21:46:14.000000001Z");
        assert_eq!(printed(second, 100_000_000), "2024-11-15T21:46:14.100Z");
        // What the store keeps: microseconds, so six digits unless they end in zeros.
        let ts = Timestamp::from_micros(1_731_707_174_039_123);
        assert_eq!(serde_json::to_string(&ts).unwrap(), "\"2024-11-15T21:46:14.039123Z\"");
        assert_eq!(printed(-1, 999_000_000), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn printing_and_reading_give_back_the_value() {
        for (seconds, nanos) in [(0, 0), (1_731_707_174, 39_123_456), (1_731_707_174, 500_000), (-1, 1)] {
            let ts = Timestamp { seconds, nanos };
            let back: Timestamp = serde_json::from_value(serde_json::to_value(ts).unwrap()).unwrap();
            assert_eq!(back, ts);
        }
    }

    #[test]
    fn a_value_outside_the_range_is_an_error_not_a_panic() {
        assert!(serde_json::to_string(&Timestamp { seconds: 0, nanos: -1 }).is_err());
        assert!(serde_json::to_string(&Timestamp { seconds: 0, nanos: 1_000_000_000 }).is_err());
        assert!(serde_json::to_string(&Timestamp { seconds: 253_402_300_800, nanos: 0 }).is_err());
        assert!(serde_json::to_string(&Timestamp { seconds: i64::MAX, nanos: 0 }).is_err());
        assert_eq!(printed(-62_135_596_800, 0), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn reads_offsets_and_rejects_garbage() {
        let ts: Timestamp = serde_json::from_str("\"2024-11-15T22:46:14.5+01:00\"").unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_731_707_174, 500_000_000));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
