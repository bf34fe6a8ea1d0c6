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

use super::{HttpConfig, Intake};
use crate::net::{self, DecompressError, HttpResponse};
use crate::pdata::grpc::RpcStatus;
use crate::pdata::{Signal, json};
use crate::pipeline::Refused;

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
    let config = std::sync::Arc::new(config);
    let handler = move |request: Request<Incoming>, _peer: SocketAddr| {
        let intake = intake.clone();
        let config = config.clone();
        async move { handle(&config, &intake, request).await }
    };
    net::serve_https(listener, tls, handler, stop).await;
}

async fn handle(config: &HttpConfig, intake: &Intake, request: Request<Incoming>) -> HttpResponse {
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
    let body = match net::decompress_body(&encoding, body, limit) {
        Ok(body) => body,
        Err(DecompressError::TooLarge) => return too_large(format, limit),
        Err(DecompressError::Unsupported) => {
            return status_response(
                format,
                StatusCode::BAD_REQUEST,
                &format!("unsupported Content-Encoding {encoding:?}; use gzip, zstd or none"),
            );
        }
        Err(DecompressError::Corrupt(e)) => {
            return status_response(format, StatusCode::BAD_REQUEST, &format!("decompressing the body failed: {e}"));
        }
    };
    let payload = match format {
        Format::Proto => json::from_proto(signal, &body).map_err(|e| e.to_string()),
        Format::Json => json::from_json(signal, &body).map_err(|e| e.to_string()),
    };
    let payload = match payload {
        Ok(payload) => payload,
        Err(e) => {
            return status_response(format, StatusCode::BAD_REQUEST, &format!("malformed {signal} request: {e}"));
        }
    };
    match intake.accept(payload) {
        Ok(()) => success(format),
        Err(refused) => {
            let message = match refused {
                Refused::Full => "pipeline is full; retry later",
                Refused::Closed => "receiver is shutting down; retry later",
            };
            let mut response = status_response(format, StatusCode::SERVICE_UNAVAILABLE, message);
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            response
        }
    }
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
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
        StatusCode::NOT_FOUND => 12, // UNIMPLEMENTED
        _ => 14,                     // UNAVAILABLE
    };
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
