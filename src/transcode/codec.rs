//! Typed JSON <-> protobuf conversion for one method, through the pbjson serde impls of its
//! request and response messages. build.rs instantiates one `MethodCodec` per method; the
//! rest of the transcoder is untyped.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The JSON side of one method.
#[derive(Clone, Copy)]
pub struct MethodCodec {
    /// A JSON request (already merged from path, query and body) to one gRPC frame: the
    /// five-byte header and the protobuf message, encoded in place.
    pub request: fn(Value) -> Result<Bytes, serde_json::Error>,
    /// The same from a body that is the whole request as it stands, read straight from its
    /// bytes: no JSON tree is built for a body that needs nothing merged into it.
    pub request_body: fn(&[u8]) -> Result<Bytes, serde_json::Error>,
    /// Where a request that `request` refused goes wrong (`checks[1].context`), read again
    /// with the path tracked: only a refused request pays for it.
    pub refused_at: fn(Value) -> Option<String>,
    /// Protobuf response bytes to JSON bytes.
    pub response: fn(&[u8]) -> Result<Vec<u8>, CodecError>,
    /// Protobuf response bytes to the JSON of one of its fields (`response_body`), or
    /// `None` when the surface's conventions leave that field out.
    pub response_field: fn(&[u8], &str) -> FieldJson,
}

/// The JSON of one response field, or `None` when the message's JSON leaves it out.
pub type FieldJson = Result<Option<Vec<u8>>, CodecError>;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("response is not valid protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("response cannot be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl MethodCodec {
    pub fn new<Req, Resp>() -> Self
    where
        Req: Message + DeserializeOwned,
        Resp: Message + Default + Serialize,
    {
        MethodCodec {
            request: request::<Req>,
            request_body: request_body::<Req>,
            refused_at: refused_at::<Req>,
            response: response::<Resp>,
            response_field: response_field::<Resp>,
        }
    }
}

fn request<Req: Message + DeserializeOwned>(json: Value) -> Result<Bytes, serde_json::Error> {
    frame(&serde_json::from_value::<Req>(json)?)
}

fn request_body<Req: Message + DeserializeOwned>(body: &[u8]) -> Result<Bytes, serde_json::Error> {
    frame(&serde_json::from_slice::<Req>(body)?)
}

fn frame<Req: Message>(message: &Req) -> Result<Bytes, serde_json::Error> {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + len);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(len).map_err(|_| serde::de::Error::custom("the request is larger than 4 GiB"))?);
    // Cannot fail: the buffer has room for the whole message.
    message.encode_raw(&mut frame);
    Ok(frame.freeze())
}

fn refused_at<Req: DeserializeOwned>(json: Value) -> Option<String> {
    let error = serde_path_to_error::deserialize::<_, Req>(json).err()?;
    let path = error.path().to_string();
    (path != ".").then_some(path)
}

/// Room for the JSON of a message of `len` protobuf bytes, so it is written without growing:
/// JSON names its fields and quotes its strings.
fn json_capacity(len: usize) -> usize {
    len * 2 + 64
}

fn response<Resp: Message + Default + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let message = Resp::decode(bytes)?;
    let mut out = Vec::with_capacity(json_capacity(bytes.len()));
    serde_json::to_writer(&mut out, &message)?;
    Ok(out)
}

fn response_field<Resp: Message + Default + Serialize>(
    bytes: &[u8],
    field: &str,
) -> Result<Option<Vec<u8>>, CodecError> {
    let message = Resp::decode(bytes)?;
    Ok(message.serialize(PickField { field, capacity: json_capacity(bytes.len()) })?)
}

/// A serializer that writes only one field of a struct. pbjson writes every message as a
/// serde struct, so this answers a `response_body` field without building the JSON tree
/// of the whole message first (the JSON path's largest cost).
struct PickField<'a> {
    field: &'a str,
    capacity: usize,
}

struct PickStruct<'a> {
    field: &'a str,
    capacity: usize,
    picked: Option<Vec<u8>>,
}

impl serde::ser::SerializeStruct for PickStruct<'_> {
    type Ok = Option<Vec<u8>>;
    type Error = serde_json::Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Self::Error> {
        if key == self.field {
            let mut out = Vec::with_capacity(self.capacity);
            serde_json::to_writer(&mut out, value)?;
            self.picked = Some(out);
        }
        Ok(())
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        Ok(self.picked)
    }
}

fn not_a_message() -> serde_json::Error {
    serde::ser::Error::custom("response_body needs a message, and the response did not serialize as one")
}

/// Every serializer method but `serialize_struct` fails: a protobuf message is a struct.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Self::Error> { Err(not_a_message()) })*
    };
}

impl<'a> serde::Serializer for PickField<'a> {
    type Ok = Option<Vec<u8>>;
    type Error = serde_json::Error;
    type SerializeSeq = serde::ser::Impossible<Self::Ok, Self::Error>;
    type SerializeTuple = serde::ser::Impossible<Self::Ok, Self::Error>;
    type SerializeTupleStruct = serde::ser::Impossible<Self::Ok, Self::Error>;
    type SerializeTupleVariant = serde::ser::Impossible<Self::Ok, Self::Error>;
    type SerializeMap = serde::ser::Impossible<Self::Ok, Self::Error>;
    type SerializeStruct = PickStruct<'a>;
    type SerializeStructVariant = serde::ser::Impossible<Self::Ok, Self::Error>;

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<PickStruct<'a>, Self::Error> {
        Ok(PickStruct { field: self.field, capacity: self.capacity, picked: None })
    }

    refuse! {
        serialize_bool(bool) -> Self::Ok;
        serialize_i8(i8) -> Self::Ok;
        serialize_i16(i16) -> Self::Ok;
        serialize_i32(i32) -> Self::Ok;
        serialize_i64(i64) -> Self::Ok;
        serialize_u8(u8) -> Self::Ok;
        serialize_u16(u16) -> Self::Ok;
        serialize_u32(u32) -> Self::Ok;
        serialize_u64(u64) -> Self::Ok;
        serialize_f32(f32) -> Self::Ok;
        serialize_f64(f64) -> Self::Ok;
        serialize_char(char) -> Self::Ok;
        serialize_str(&str) -> Self::Ok;
        serialize_bytes(&[u8]) -> Self::Ok;
        serialize_none() -> Self::Ok;
        serialize_unit() -> Self::Ok;
        serialize_unit_struct(&'static str) -> Self::Ok;
        serialize_unit_variant(&'static str, u32, &'static str) -> Self::Ok;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<Self::Ok, Self::Error> {
        Err(not_a_message())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Err(not_a_message())
    }
}
