//! `google.protobuf.Timestamp` with the proto3 JSON form the seed pages show
//! (`2024-11-15T21:46:14.039Z`). pbjson-types prints `+00:00` instead, so build.rs maps the
//! type here for prost and pbjson alike.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::store::Micros;

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

    fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.seconds, u32::try_from(self.nanos).ok()?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let datetime = self.to_datetime().ok_or_else(|| serde::ser::Error::custom("timestamp out of range"))?;
        serializer.serialize_str(&datetime.to_rfc3339_opts(SecondsFormat::Millis, true))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_utc_with_z_and_milliseconds() {
        let ts = Timestamp::from_micros(1_731_707_174_039_123);
        assert_eq!(serde_json::to_string(&ts).unwrap(), "\"2024-11-15T21:46:14.039Z\"");
    }

    #[test]
    fn reads_offsets_and_rejects_garbage() {
        let ts: Timestamp = serde_json::from_str("\"2024-11-15T22:46:14.5+01:00\"").unwrap();
        assert_eq!((ts.seconds, ts.nanos), (1_731_707_174, 500_000_000));
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
