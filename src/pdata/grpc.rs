//! gRPC codecs that move OTLP payloads as protobuf bytes: ocelot encodes and decodes
//! them itself, so a shared batch is never copied into a request, and a malformed
//! request is answered `INVALID_ARGUMENT` (tonic's own prost codec says `INTERNAL`).

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::Signal;

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

/// What an OTLP/gRPC server does with one export request's protobuf bytes.
pub trait ExportHandler: Clone + Send + Sync + 'static {
    fn handle(&self, request: ExportRequest) -> impl Future<Output = Result<(), Status>> + Send;

    /// Checks a request by its headers before its body is read and decompressed
    /// (authentication); the default lets every request in.
    fn admit(&self, _headers: &http::HeaderMap) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(Ok(()))
    }
}

/// One export request as a handler sees it.
pub struct ExportRequest {
    pub signal: Signal,
    /// The request's metadata, as HTTP headers.
    pub headers: http::HeaderMap,
    /// The `:authority` the client asked for.
    pub authority: Option<String>,
    /// The client's address, when the connection knows it.
    pub peer: Option<std::net::IpAddr>,
    pub body: Bytes,
}

/// The request's `:authority`, carried to the handler in the request's extensions.
#[derive(Clone)]
struct Authority(String);

/// One signal's OTLP gRPC service, at the type level, for tonic's router.
pub trait SignalService: Send + Sync + 'static {
    const SIGNAL: Signal;
}
pub struct Traces;
pub struct Metrics;
pub struct Logs;
impl SignalService for Traces {
    const SIGNAL: Signal = Signal::Traces;
}
impl SignalService for Metrics {
    const SIGNAL: Signal = Signal::Metrics;
}
impl SignalService for Logs {
    const SIGNAL: Signal = Signal::Logs;
}

/// An OTLP/gRPC export service over raw bytes: gzip and zstd accepted, requests
/// larger than `max_message_size` (after decompression) refused by tonic, each
/// request handed to `H`. An empty response (no partial success) is zero bytes.
pub struct OtlpGrpcService<H, S> {
    handler: H,
    max_message_size: usize,
    _service: PhantomData<S>,
}

impl<H: ExportHandler, S: SignalService> OtlpGrpcService<H, S> {
    pub fn new(handler: H, max_message_size: usize) -> Self {
        OtlpGrpcService { handler, max_message_size, _service: PhantomData }
    }
}

impl<H: Clone, S> Clone for OtlpGrpcService<H, S> {
    fn clone(&self) -> Self {
        OtlpGrpcService {
            handler: self.handler.clone(),
            max_message_size: self.max_message_size,
            _service: PhantomData,
        }
    }
}

impl<H, S: SignalService> NamedService for OtlpGrpcService<H, S> {
    const NAME: &'static str = S::SIGNAL.grpc_service();
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

impl<H, S, B> tower_service::Service<http::Request<B>> for OtlpGrpcService<H, S>
where
    H: ExportHandler,
    S: SignalService,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != S::SIGNAL.grpc_path() {
                return Ok(Status::unimplemented(format!("unknown method {}", request.uri().path())).into_http());
            }
            let mut encodings = EnabledCompressionEncodings::default();
            encodings.enable(CompressionEncoding::Gzip);
            encodings.enable(CompressionEncoding::Zstd);
            let mut grpc = Grpc::new(BytesCodec)
                .apply_compression_config(encodings, encodings)
                .apply_max_message_size_config(Some(service.max_message_size), None);
            let (parts, body) = request.into_parts();
            if let Err(status) = service.handler.admit(&parts.headers).await {
                return Ok(status.into_http());
            }
            let request = http::Request::from_parts(parts, body);
            let export = Export { handler: service.handler, signal: S::SIGNAL };
            let mut request = request;
            if let Some(authority) = request.uri().authority().map(|a| a.to_string()) {
                request.extensions_mut().insert(Authority(authority));
            }
            let mut response = grpc.unary(export, request).await;
            too_large_is_resource_exhausted(&mut response);
            Ok(response)
        })
    }
}

struct Export<H> {
    handler: H,
    signal: Signal,
}

impl<H: ExportHandler> UnaryService<Bytes> for Export<H> {
    type Response = Bytes;
    type Future = BoxFuture<Response<Bytes>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (handler, signal) = (self.handler.clone(), self.signal);
        let peer = request.remote_addr().map(|a| a.ip());
        let (metadata, extensions, body) = request.into_parts();
        let authority = extensions.get::<Authority>().map(|a| a.0.clone());
        let request = ExportRequest { signal, headers: metadata.into_headers(), authority, peer, body };
        Box::pin(async move { handler.handle(request).await.map(|()| Response::new(Bytes::new())) })
    }
}

/// tonic answers a request over `max_message_size` with `OUT_OF_RANGE`, which OTLP
/// clients retry (the same request, refused again: a retry storm). Upstream answers
/// `RESOURCE_EXHAUSTED` without retry info, which clients do not retry: so do we.
fn too_large_is_resource_exhausted<B>(response: &mut http::Response<B>) {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers.get("grpc-message").is_some_and(|v| {
        let text = String::from_utf8_lossy(v.as_bytes());
        text.contains("too large") || text.contains("too%20large")
    });
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

/// `google.rpc.Status`: the body of OTLP/HTTP errors and the gRPC status details.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The server's `RetryInfo.retry_delay` in a gRPC status's details, if it sent one.
pub fn retry_delay(status: &Status) -> Option<std::time::Duration> {
    use prost::Message;
    let details = RpcStatus::decode(status.details()).ok()?;
    let info = details.details.iter().find(|any| any.type_url.ends_with("google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(&info.value[..]).ok()?.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos).ok()?;
    Some(std::time::Duration::new(seconds, nanos.min(999_999_999)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn retry_info_is_read_from_status_details() {
        let info = RetryInfo { retry_delay: Some(ProtoDuration { seconds: 3, nanos: 500_000_000 }) };
        let details = RpcStatus {
            code: 8,
            message: "slow down".into(),
            details: vec![ProtoAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        let status = Status::with_details(tonic::Code::ResourceExhausted, "slow down", details.encode_to_vec().into());
        assert_eq!(retry_delay(&status), Some(std::time::Duration::from_millis(3500)));
        assert_eq!(retry_delay(&Status::resource_exhausted("no details")), None);
    }
}
