//! OTLP/HTTP server: `POST /v1/{traces,metrics,logs}` with protobuf or JSON bodies,
//! optionally gzip- or zstd-compressed. Bodies are capped before and after
//! decompression at `max_request_body_size`, so a small compressed bomb cannot
//! grow past it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Answer, HttpConfig, Intake, grpc_code_of_http, http_status_of_grpc};
use crate::component::Refused;
use crate::net::{self, DecompressError, HttpResponse};
use crate::pdata::grpc::RpcStatus;
use crate::pdata::{BackendStatus, Signal, json};

/// What the client sent and wants back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Proto,
    Json,
}

/// Seconds a refused client is asked to wait before retrying.
const RETRY_AFTER_SECONDS: &str = "1";

pub(super) async fn serve(
    config: HttpConfig,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    intake: Intake,
    stop: CancellationToken,
) {
    let limits = net::ServerLimits {
        read_header_timeout: config.read_header_timeout.0,
        idle_timeout: config.idle_timeout.0,
        max_connections: config.max_connections,
    };
    let config = std::sync::Arc::new(config);
    let handler = move |request: Request<Incoming>, peer: SocketAddr| {
        let intake = intake.clone();
        let config = config.clone();
        async move { handle(&config, &intake, request, peer).await }
    };
    net::serve_https(listener, tls, limits, handler, stop).await;
}

async fn handle(config: &HttpConfig, intake: &Intake, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    let Some(cors) = config.cors.as_ref().filter(|c| !c.allowed_origins.is_empty()) else {
        return handle_signal(config, intake, request, peer).await;
    };
    if let Some(headers) = cors.preflight(request.method(), request.headers()) {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        response.headers_mut().extend(headers);
        return response;
    }
    let mut origin = http::HeaderMap::new();
    if let Some(value) = request.headers().get(http::header::ORIGIN) {
        origin.insert(http::header::ORIGIN, value.clone());
    }
    let mut response = handle_signal(config, intake, request, peer).await;
    cors.response_headers(&origin, response.headers_mut());
    response
}

async fn handle_signal(
    config: &HttpConfig,
    intake: &Intake,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> HttpResponse {
    let path = request.uri().path();
    let signal = if path == config.traces_url_path {
        Signal::Traces
    } else if path == config.metrics_url_path {
        Signal::Metrics
    } else if path == config.logs_url_path {
        Signal::Logs
    } else {
        return net::text_response(StatusCode::NOT_FOUND, "404 page not found\n");
    };
    if request.method() != Method::POST {
        let mut response =
            net::text_response(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed, supported: [POST]\n");
        response.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let content_type =
        request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let format = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/x-protobuf" => Format::Proto,
        "application/json" => Format::Json,
        other => {
            return status_response(
                Format::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("{other:?} is not a supported content type; use application/x-protobuf or application/json"),
            );
        }
    };
    if intake.consumers.get(signal).is_empty() {
        return status_response(format, StatusCode::NOT_FOUND, &format!("this receiver is in no {signal} pipeline"));
    }
    let authority = request.uri().authority().map(|a| a.to_string());
    let metadata = match intake.admit(request.headers(), authority.as_deref()).await {
        Ok(metadata) => metadata.with_addr(Some(peer.ip())),
        Err(e) => return status_response(format, StatusCode::UNAUTHORIZED, e.0),
    };
    let limit = config.max_body_bytes();
    let encoding = request
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let declared_length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > limit) {
        return too_large(format, limit);
    }
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return too_large(format, limit);
        }
        Err(e) => {
            return status_response(format, StatusCode::BAD_REQUEST, &format!("reading the body failed: {e}"));
        }
    };
    // Inflating and decoding a big body runs off the runtime's worker threads.
    let decode_encoding = encoding.clone();
    let decoded = net::decode_off_runtime(body.len(), move || {
        let body = net::decompress_body(&decode_encoding, body, limit).map_err(Undecoded::Decompress)?;
        match format {
            Format::Proto => json::from_proto(signal, &body).map_err(|e| Undecoded::Malformed(e.to_string())),
            Format::Json => json::from_json(signal, &body).map_err(|e| Undecoded::Malformed(e.to_string())),
        }
    })
    .await;
    let payload = match decoded {
        Some(Ok(payload)) => payload,
        Some(Err(Undecoded::Decompress(DecompressError::TooLarge))) => return too_large(format, limit),
        Some(Err(Undecoded::Decompress(DecompressError::Unsupported))) => {
            return status_response(
                format,
                StatusCode::BAD_REQUEST,
                &format!("unsupported Content-Encoding {encoding:?}; use gzip, zstd or none"),
            );
        }
        Some(Err(Undecoded::Decompress(DecompressError::Corrupt(e)))) => {
            return status_response(format, StatusCode::BAD_REQUEST, &format!("decompressing the body failed: {e}"));
        }
        Some(Err(Undecoded::Malformed(e))) => {
            return status_response(format, StatusCode::BAD_REQUEST, &format!("malformed {signal} request: {e}"));
        }
        None => return status_response(format, StatusCode::INTERNAL_SERVER_ERROR, "decoding the request failed"),
    };
    match intake.accept(payload, metadata).await {
        Ok(()) => success(format),
        Err(Answer::Permanent { status, message }) => {
            let code = match status {
                Some(BackendStatus::Http(code)) => code,
                Some(BackendStatus::Grpc(code)) => http_status_of_grpc(tonic::Code::from_i32(code)),
                None => 500,
            };
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            status_response(format, code, &message)
        }
        Err(answer) => {
            let message = match answer {
                Answer::Refused(Refused::Full) => "pipeline is full; retry later".to_string(),
                Answer::Refused(Refused::Closed) => "receiver is shutting down; retry later".to_string(),
                Answer::Refused(Refused::Memory) => "data refused due to high memory usage; retry later".to_string(),
                Answer::Unavailable(message) => format!("not delivered, retry later: {message}"),
                Answer::Permanent { message, .. } => message,
            };
            let mut response = status_response(format, StatusCode::SERVICE_UNAVAILABLE, &message);
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            response
        }
    }
}

/// Why a body did not become a payload.
enum Undecoded {
    Decompress(DecompressError),
    Malformed(String),
}

fn too_large(format: Format, limit: usize) -> HttpResponse {
    status_response(
        format,
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("request body is larger than max_request_body_size ({limit} bytes)"),
    )
}

/// An empty Export*ServiceResponse (no partial success): zero bytes in protobuf and
/// `{}` in JSON, whatever the signal.
fn success(format: Format) -> HttpResponse {
    let body = match format {
        Format::Proto => Bytes::new(),
        Format::Json => Bytes::from_static(b"{}"),
    };
    respond(format, StatusCode::OK, body)
}

/// An error body as the OTLP specification asks: a `google.rpc.Status`.
fn status_response(format: Format, status: StatusCode, message: &str) -> HttpResponse {
    let code = match status.as_u16() {
        503 => tonic::Code::Unavailable,
        415 => tonic::Code::InvalidArgument,
        404 => tonic::Code::Unimplemented,
        other => grpc_code_of_http(other),
    } as i32;
    let body = match format {
        Format::Proto => {
            Bytes::from(RpcStatus { code, message: message.to_string(), details: Vec::new() }.encode_to_vec())
        }
        Format::Json => Bytes::from(serde_json::json!({ "code": code, "message": message }).to_string()),
    };
    respond(format, status, body)
}

fn respond(format: Format, status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let content_type = match format {
        Format::Proto => "application/x-protobuf",
        Format::Json => "application/json",
    };
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
