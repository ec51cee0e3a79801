//! Typed JSON <-> protobuf conversion for one method, through the pbjson serde impls of its
//! request and response messages. build.rs instantiates one `MethodCodec` per method; the
//! rest of the transcoder is untyped.

use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The JSON side of one method.
#[derive(Clone, Copy)]
pub struct MethodCodec {
    /// A JSON request (already merged from path, query and body) to protobuf bytes.
    pub request: fn(Value) -> Result<Vec<u8>, serde_json::Error>,
    /// Protobuf response bytes to JSON bytes.
    pub response: fn(&[u8]) -> Result<Vec<u8>, CodecError>,
    /// Protobuf response bytes to a JSON value, for `response_body` selection.
    pub response_value: fn(&[u8]) -> Result<Value, CodecError>,
}

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
        MethodCodec { request: request::<Req>, response: response::<Resp>, response_value: response_value::<Resp> }
    }
}

fn request<Req: Message + DeserializeOwned>(json: Value) -> Result<Vec<u8>, serde_json::Error> {
    let message: Req = serde_json::from_value(json)?;
    Ok(message.encode_to_vec())
}

fn response<Resp: Message + Default + Serialize>(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
    let message = Resp::decode(bytes)?;
    Ok(serde_json::to_vec(&message)?)
}

fn response_value<Resp: Message + Default + Serialize>(bytes: &[u8]) -> Result<Value, CodecError> {
    let message = Resp::decode(bytes)?;
    Ok(serde_json::to_value(&message)?)
}
