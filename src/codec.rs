//! The protobuf codec of iamd's services: prost's, with buffers sized for iamd's messages.
//!
//! tonic starts each call's decode and encode buffers at 8 KiB: 16 KiB for every call in
//! flight, while iamd's requests and most answers are a few hundred bytes. Under an overload
//! (a thousand calls at once) that is memory the server holds for nothing. A buffer still
//! grows for a larger message, as before.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::BufferSettings;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// A buffer's first capacity.
const BUFFER: usize = 1024;
/// tonic's: how much an encoder may buffer before it yields to send what it has.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER, YIELD_THRESHOLD)
}

/// The codec tonic-build names for every service (`build.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
