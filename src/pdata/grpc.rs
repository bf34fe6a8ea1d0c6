//! gRPC codecs that move OTLP payloads as protobuf bytes: ocelot encodes and decodes
//! them itself, so a shared batch is never copied into a request, and a malformed
//! request is answered `INVALID_ARGUMENT` (tonic's own prost codec says `INTERNAL`).

use std::marker::PhantomData;

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Client side: sends pre-encoded bytes, decodes a prost response.
pub struct ClientCodec<Resp>(PhantomData<Resp>);

impl<Resp> Default for ClientCodec<Resp> {
    fn default() -> Self {
        ClientCodec(PhantomData)
    }
}

impl<Resp: prost::Message + Default + Send + 'static> Codec for ClientCodec<Resp> {
    type Encode = Bytes;
    type Decode = Resp;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<Resp>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(Default::default())
    }
}

/// Server side: bytes in, bytes out.
#[derive(Default)]
pub struct BytesCodec;

impl Codec for BytesCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = BytesEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> BytesDecoder {
        BytesDecoder
    }
}

pub struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

pub struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}
