//! CORS for the OTLP/HTTP receiver, as upstream's confighttp does it (with rs/cors),
//! so browser SDKs can send: a preflight `OPTIONS` from an allowed origin is answered
//! 204 with the allowed method and headers; a `POST` from one gets
//! `Access-Control-Allow-Origin`. An origin not allowed gets no CORS headers, and the
//! browser refuses the response. Without `allowed_origins` CORS is off.

use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to send, such as `https://*.example.com`; `*` allows any. One
    /// `*` per origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Request headers allowed beyond the simple ones (`Accept`, `Accept-Language`,
    /// `Content-Type`, `Content-Language`, and `X-Requested-With` when none are
    /// listed); `*` allows any.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers a browser script may read.
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer; 0: not sent.
    #[serde(default)]
    pub max_age: u64,
}

impl CorsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(o) = self.allowed_origins.iter().find(|o| o.matches('*').count() > 1) {
            return Err(format!("cors.allowed_origins: `{o}` has more than one *"));
        }
        let invalid = |h: &&String| HeaderValue::from_str(h).is_err() || h.is_empty();
        if let Some(h) = self.allowed_headers.iter().chain(&self.exposed_headers).find(invalid) {
            return Err(format!("cors: `{h}` is not a header name"));
        }
        Ok(())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| match allowed.split_once('*') {
            None => allowed.eq_ignore_ascii_case(origin),
            Some((prefix, suffix)) => {
                let origin = origin.as_bytes();
                origin.len() >= prefix.len() + suffix.len()
                    && origin[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
                    && origin[origin.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        })
    }

    fn header_allowed(&self, name: &str) -> bool {
        const SIMPLE: [&str; 4] = ["accept", "accept-language", "content-type", "content-language"];
        let name = name.trim();
        SIMPLE.iter().any(|s| s.eq_ignore_ascii_case(name))
            || (self.allowed_headers.is_empty() && name.eq_ignore_ascii_case("x-requested-with"))
            || self.allowed_headers.iter().any(|h| h == "*" || h.eq_ignore_ascii_case(name))
    }

    /// The answer to a preflight request: the CORS headers if it is allowed, none if
    /// not. `None` if the request is not a preflight.
    pub fn preflight(&self, method: &http::Method, request: &HeaderMap) -> Option<HeaderMap> {
        if self.allowed_origins.is_empty() || method != http::Method::OPTIONS {
            return None;
        }
        let origin = request.get(header::ORIGIN)?.to_str().ok()?;
        let wanted = request.get(header::ACCESS_CONTROL_REQUEST_METHOD)?.to_str().ok()?;
        let mut out = HeaderMap::new();
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        out.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Method"));
        out.append(header::VARY, HeaderValue::from_static("Access-Control-Request-Headers"));
        let headers = request
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let headers_ok = headers.split(',').filter(|h| !h.trim().is_empty()).all(|h| self.header_allowed(h));
        if !self.origin_allowed(origin) || !wanted.eq_ignore_ascii_case("POST") || !headers_ok {
            return Some(out);
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin));
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
        if !headers.trim().is_empty()
            && let Ok(v) = HeaderValue::from_str(headers.trim())
        {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if self.max_age > 0 {
            out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(self.max_age));
        }
        Some(out)
    }

    /// The CORS headers of an actual request's response.
    pub fn response_headers(&self, request: &HeaderMap, out: &mut HeaderMap) {
        if self.allowed_origins.is_empty() {
            return;
        }
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = request.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return };
        if !self.origin_allowed(origin) {
            return;
        }
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, self.allow_origin(origin));
        if !self.exposed_headers.is_empty()
            && let Ok(v) = HeaderValue::from_str(&self.exposed_headers.join(", "))
        {
            out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }

    fn allow_origin(&self, origin: &str) -> HeaderValue {
        if self.allowed_origins.iter().any(|o| o == "*") {
            HeaderValue::from_static("*")
        } else {
            HeaderValue::from_str(origin).unwrap_or_else(|_| HeaderValue::from_static("null"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CorsConfig {
        CorsConfig {
            allowed_origins: vec!["http://*.example.com".into(), "https://app.test".into()],
            allowed_headers: vec!["X-Custom".into()],
            exposed_headers: vec!["X-Trace".into()],
            max_age: 600,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn preflight_from_an_allowed_origin_gets_the_headers() {
        let c = config();
        let request = headers(&[
            ("origin", "http://ui.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-custom"),
        ]);
        let out = c.preflight(&http::Method::OPTIONS, &request).unwrap();
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://ui.example.com");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_HEADERS], "content-type, x-custom");
        assert_eq!(out[header::ACCESS_CONTROL_MAX_AGE], "600");
    }

    #[test]
    fn what_is_not_allowed_gets_no_cors_headers() {
        let c = config();
        for request in [
            headers(&[("origin", "http://evil.test"), ("access-control-request-method", "POST")]),
            headers(&[("origin", "https://app.test"), ("access-control-request-method", "DELETE")]),
            headers(&[
                ("origin", "https://app.test"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "x-other"),
            ]),
        ] {
            let out = c.preflight(&http::Method::OPTIONS, &request).unwrap();
            assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "{request:?}");
        }
        assert!(c.preflight(&http::Method::POST, &headers(&[("origin", "https://app.test")])).is_none());
        let mut out = HeaderMap::new();
        c.response_headers(&headers(&[("origin", "https://app.test")]), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.test");
        assert_eq!(out[header::ACCESS_CONTROL_EXPOSE_HEADERS], "X-Trace");
        let mut out = HeaderMap::new();
        c.response_headers(&headers(&[("origin", "https://example.com")]), &mut out);
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "the wildcard needs a subdomain");
        let any = CorsConfig { allowed_origins: vec!["*".into()], ..Default::default() };
        let mut out = HeaderMap::new();
        any.response_headers(&headers(&[("origin", "http://x")]), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }
}
