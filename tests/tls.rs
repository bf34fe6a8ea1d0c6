//! TLS and mTLS between two real ocelots: the `otlp` and `otlphttp` exporters (client
//! certificates, a private CA in `ca_file`) to an OTLP receiver serving TLS that
//! requires client certificates. A client without a certificate is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate,
/// written as PEM files into `dir`.
fn write_certificates(dir: &Path) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "ocelot test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let mut client_params = CertificateParams::new(vec!["client.ocelot.test".to_string()]).unwrap();
    client_params.distinguished_name.push(DnType::CommonName, "ocelot test client");
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
}

#[test]
fn mtls_from_both_otlp_exporters_to_a_tls_receiver() {
    let certs = tempfile::tempdir().unwrap();
    write_certificates(certs.path());
    let c = certs.path().display().to_string();
    let downstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key, client_ca_file: {c}/ca.pem }}
      http:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key, client_ca_file: {c}/ca.pem }}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      level: none
"#
    ));
    let grpc = downstream.grpc("otlp");
    let https = downstream.http("otlp");
    let upstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlp:
    endpoint: {grpc}
    tls: {{ ca_file: {c}/ca.pem, cert_file: {c}/client.pem, key_file: {c}/client.key }}
  otlphttp:
    endpoint: https://{https}
    tls: {{ ca_file: {c}/ca.pem, cert_file: {c}/client.pem, key_file: {c}/client.key }}
  otlphttp/nocert:
    endpoint: https://{https}
    tls: {{ ca_file: {c}/ca.pem }}
    retry_on_failure: {{ enabled: false }}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp, otlphttp, otlphttp/nocert]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    ));
    let (status, _, _) =
        http_post(upstream.http("otlp"), "/v1/logs", "application/json", &logs_json(&["secret".to_string()]));
    assert_eq!(status, 200);

    // One copy through each exporter that has a client certificate.
    let out = downstream.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(15), "two copies over TLS", || log_bodies(&read_json_lines(&out)).len() == 2);
    assert_eq!(log_bodies(&read_json_lines(&out)), vec!["secret", "secret"]);
    // Without a client certificate the handshake is refused and the batch fails.
    wait_until(Duration::from_secs(15), "the refused exporter to count its failure", || {
        upstream.metric("otelcol_exporter_send_failed_log_records_total", "exporter=\"otlphttp/nocert\"") == 1.0
    });
    upstream.wait_metric("otelcol_exporter_sent_log_records_total", "exporter=\"otlp\"", 1.0);
    upstream.wait_metric("otelcol_exporter_sent_log_records_total", "exporter=\"otlphttp\"", 1.0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log_bodies(&read_json_lines(&out)).len(), 2);

    assert!(upstream.stop().success());
    assert!(downstream.stop().success());
}

#[test]
fn a_missing_certificate_fails_the_start_with_its_path() {
    let error = Agent::try_start(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n        tls: { cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem }\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs: { receivers: [otlp], exporters: [debug] }\n  telemetry:\n    metrics:\n      level: none\n",
    )
    .err()
    .expect("must not start");
    assert!(error.contains("exited with exit status: 1"), "{error}");
    assert!(error.contains("cannot read tls.cert_file `/nonexistent/cert.pem`"), "{error}");
}

/// A second, unrelated CA, as PEM in `dir/other-ca.pem`.
fn write_other_ca(dir: &Path) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "some other CA");
    let key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("other-ca.pem"), params.self_signed(&key).unwrap().pem()).unwrap();
}

#[test]
fn a_ca_file_replaces_the_system_roots_unless_they_are_included() {
    let certs = tempfile::tempdir().unwrap();
    write_certificates(certs.path());
    write_other_ca(certs.path());
    let c = certs.path().display().to_string();
    let downstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key }}
      http:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key }}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      level: none
"#
    ));
    let (grpc, https) = (downstream.grpc("otlp"), downstream.http("otlp"));
    // Each exporter in its own pipeline; the pinned ones trust only other-ca.pem.
    let mut exporters = String::new();
    let mut receivers = String::new();
    let mut pipelines = String::new();
    let cases = [
        ("pinned", "otlp", format!("{grpc}"), format!("ca_file: {c}/other-ca.pem")),
        ("pinned", "otlphttp", format!("https://{https}"), format!("ca_file: {c}/other-ca.pem")),
        (
            "included",
            "otlp",
            format!("{grpc}"),
            format!("ca_file: {c}/other-ca.pem, include_system_ca_certs_pool: true"),
        ),
        (
            "included",
            "otlphttp",
            format!("https://{https}"),
            format!("ca_file: {c}/other-ca.pem, include_system_ca_certs_pool: true"),
        ),
        ("system", "otlp", format!("{grpc}"), String::new()),
        ("system", "otlphttp", format!("https://{https}"), String::new()),
    ];
    for (name, kind, endpoint, tls) in &cases {
        let id = format!("{kind}/{name}");
        exporters.push_str(&format!(
            "  {id}:\n    endpoint: {endpoint}\n    tls: {{ {tls} }}\n    retry_on_failure: {{ enabled: false }}\n"
        ));
        receivers
            .push_str(&format!("  otlp/{kind}_{name}:\n    protocols:\n      http: {{ endpoint: 127.0.0.1:0 }}\n"));
        pipelines
            .push_str(&format!("    logs/{kind}_{name}: {{ receivers: [otlp/{kind}_{name}], exporters: [{id}] }}\n"));
    }
    let config = format!(
        "receivers:\n{receivers}exporters:\n{exporters}service:\n  pipelines:\n{pipelines}  telemetry:\n    metrics:\n      address: 127.0.0.1:0\n"
    );
    // The test CA stands in for the system's roots.
    let system = format!("SSL_CERT_FILE={c}/ca.pem");
    let upstream = Agent::start_under(&["env", &system], &config, &[]);
    for (name, kind, _, _) in &cases {
        let (status, _, _) = http_post(
            upstream.http(&format!("otlp/{kind}_{name}")),
            "/v1/logs",
            "application/json",
            &logs_json(&[format!("{kind} {name}")]),
        );
        assert_eq!(status, 200);
    }
    for (name, kind, _, _) in &cases {
        let id = format!("exporter=\"{kind}/{name}\"");
        let (metric, what) = if *name == "pinned" {
            ("otelcol_exporter_send_failed_log_records_total", "refused: the server's CA is not the pinned one")
        } else {
            ("otelcol_exporter_sent_log_records_total", "delivered")
        };
        wait_until(Duration::from_secs(15), &format!("{kind}/{name} {what}"), || upstream.metric(metric, &id) == 1.0);
    }
    let out = downstream.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(5), "four deliveries", || log_bodies(&read_json_lines(&out)).len() == 4);
    let mut bodies = log_bodies(&read_json_lines(&out));
    bodies.sort();
    assert_eq!(bodies, vec!["otlp included", "otlp system", "otlphttp included", "otlphttp system"]);
    assert!(upstream.stop().success());
    assert!(downstream.stop().success());
}

/// `insecure_skip_verify` reaches a server whose CA is not trusted, over gRPC and
/// HTTP, with version limits honoured; without it the same server is refused.
#[test]
fn insecure_skip_verify_and_version_limits() {
    let certs = tempfile::tempdir().unwrap();
    write_certificates(certs.path());
    let c = certs.path().display().to_string();
    let downstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key }}
      http:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key }}
exporters:
  file:
    path: "{{dir}}/out.jsonl"
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [file] }}
  telemetry:
    metrics:
      level: none
"#
    ));
    let grpc = downstream.grpc("otlp");
    let https = downstream.http("otlp");
    let upstream = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
exporters:
  otlp_grpc:
    endpoint: {grpc}
    tls: {{ insecure_skip_verify: true, min_version: "1.3" }}
  otlp_http:
    endpoint: https://{https}
    tls: {{ insecure_skip_verify: true, max_version: "1.2" }}
  otlp_http/strict:
    endpoint: https://{https}
    retry_on_failure: {{ enabled: false }}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlp_grpc, otlp_http, otlp_http/strict]
  telemetry:
    metrics:
      address: 127.0.0.1:0
"#
    ));
    assert!(upstream.count_logs("the server's certificate is not checked") >= 2);
    let (status, _, _) =
        http_post(upstream.http("otlp"), "/v1/logs", "application/json", &logs_json(&["unverified".to_string()]));
    assert_eq!(status, 200);
    let out = downstream.dir.path().join("out.jsonl");
    wait_until(Duration::from_secs(15), "two copies", || log_bodies(&read_json_lines(&out)).len() == 2);
    wait_until(Duration::from_secs(15), "the verifying exporter to fail", || {
        upstream.metric("otelcol_exporter_send_failed_log_records_total", "exporter=\"otlp_http/strict\"") == 1.0
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(log_bodies(&read_json_lines(&out)).len(), 2);
    assert!(upstream.stop().success());
    assert!(downstream.stop().success());

    // A version floor above the ceiling, or a ceiling ocelot cannot meet, is a config error.
    for (tls, message) in [
        (r#"{ min_version: "1.3", max_version: "1.2" }"#, "min_version is newer than tls.max_version"),
        (r#"{ max_version: "1.1" }"#, "max_version below 1.2"),
        (r#"{ min_version: "2.0" }"#, "is not one of 1.0, 1.1, 1.2, 1.3"),
    ] {
        let error = Agent::try_start(&format!(
            "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\nexporters:\n  otlp_http:\n    endpoint: https://127.0.0.1:9\n    tls: {tls}\nservice:\n  pipelines:\n    logs: {{ receivers: [otlp], exporters: [otlp_http] }}\n  telemetry:\n    metrics:\n      level: none\n"
        ))
        .err()
        .expect("must not start");
        assert!(error.contains(message), "{tls}: {error}");
    }
}

/// The certificate a TLS server at `addr` presents (DER, hex), from Python's `ssl`.
fn presented_certificate(addr: std::net::SocketAddr, alpn: &str) -> String {
    let script = format!(
        "import socket, ssl\nctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\nctx.check_hostname = False\nctx.verify_mode = ssl.CERT_NONE\nctx.set_alpn_protocols(['{alpn}'])\ns = ctx.wrap_socket(socket.create_connection(('{}', {}), timeout=10))\nprint(s.getpeercert(binary_form=True).hex())\n",
        addr.ip(),
        addr.port()
    );
    let output = std::process::Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The DER of the first certificate in a PEM file, as hex.
fn pem_certificate(path: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_file_iter(path).unwrap().next().unwrap().unwrap();
    der.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn reload_interval_serves_a_renewed_certificate_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    write_certificates(certs.path());
    let c = certs.path().display().to_string();
    let agent = Agent::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key, reload_interval: 200ms }}
      http:
        endpoint: 127.0.0.1:0
        tls: {{ cert_file: {c}/server.pem, key_file: {c}/server.key, reload_interval: 200ms }}
exporters:
  debug:
service:
  pipelines:
    logs: {{ receivers: [otlp], exporters: [debug] }}
  telemetry:
    metrics:
      level: none
"#
    ));
    let (grpc, https) = (agent.grpc("otlp"), agent.http("otlp"));
    let first = pem_certificate(&certs.path().join("server.pem"));
    assert_eq!(presented_certificate(grpc, "h2"), first);
    assert_eq!(presented_certificate(https, "http/1.1"), first);

    // Renewed: new files in place (written aside, then renamed, as cert-manager does).
    let renewed = tempfile::tempdir().unwrap();
    write_certificates(renewed.path());
    for name in ["server.pem", "server.key"] {
        std::fs::copy(renewed.path().join(name), certs.path().join(format!("{name}.new"))).unwrap();
        std::fs::rename(certs.path().join(format!("{name}.new")), certs.path().join(name)).unwrap();
    }
    let second = pem_certificate(&certs.path().join("server.pem"));
    assert_ne!(first, second);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(presented_certificate(grpc, "h2"), second);
    assert_eq!(presented_certificate(https, "http/1.1"), second);

    // A broken renewal keeps the certificate that works, and says so.
    std::fs::write(certs.path().join("server.pem"), "not a certificate").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(presented_certificate(https, "http/1.1"), second);
    wait_until(Duration::from_secs(5), "the failed reload logged", || {
        agent.count_logs("reading the certificate again failed") >= 1
    });
    assert!(agent.stop().success());
}
