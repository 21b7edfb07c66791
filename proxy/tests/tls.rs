//! TLS with certificates generated in the test (rcgen): exporter → TLS sink, TLS + mTLS receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{export, make_request, span_set, Sink, Tailgate};
use tailgate_proto::compression::Compression;

struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    /// A CA, a server certificate for `localhost` and a client certificate, as PEM files.
    fn new() -> Pki {
        let dir = support::scratch_dir();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "tailgate test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        for (name, san) in [("server", "localhost"), ("client", "client.test")] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![san.to_owned()])
                .unwrap()
                .signed_by(&key, &ca, &ca_key)
                .unwrap();
            std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).to_str().unwrap().to_owned()
    }

    fn certs(&self, f: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(Path::new(&self.path(f)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn key(&self, f: &str) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(Path::new(&self.path(f))).unwrap()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn sink_config(&self) -> Arc<rustls::ServerConfig> {
        let mut c = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.certs("server.pem"), self.key("server-key.pem"))
            .unwrap();
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    }

    fn client_config(&self, with_cert: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for c in self.certs("ca.pem") {
            roots.add(c).unwrap();
        }
        let b = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut c = if with_cert {
            b.with_client_auth_cert(self.certs("client.pem"), self.key("client-key.pem"))
                .unwrap()
        } else {
            b.with_no_client_auth()
        };
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    }
}

fn exporter_config(receiver: &str, exporter_tls: &str, sink: std::net::SocketAddr) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
{receiver}
exporters:
  otlp:
    endpoint: {sink}
    retry_on_failure: {{enabled: false}}
    tls:
{exporter_tls}
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp]}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporter_verifies_the_sink_chain_and_fails_on_a_wrong_name() {
    let pki = Pki::new();
    let sink = Sink::start_with(Some(pki.sink_config())).await;
    let good = format!(
        "      ca_file: {}\n      server_name_override: localhost",
        pki.path("ca.pem")
    );
    let tg = Tailgate::start(&exporter_config("", &good, sink.addr), &["--cores", "1"]);
    let req = make_request(21, 1, 1, 5);
    assert_eq!(export(tg.grpc(), &req, Compression::Identity).await.0, 0);
    sink.wait_spans(5).await;
    assert_eq!(span_set(&sink.requests()), span_set(&[req]));
    drop(tg);

    let wrong = format!(
        "      ca_file: {}\n      server_name_override: wrong.example",
        pki.path("ca.pem")
    );
    let tg = Tailgate::start(&exporter_config("", &wrong, sink.addr), &["--cores", "1"]);
    assert_eq!(
        export(tg.grpc(), &make_request(22, 1, 1, 5), Compression::Identity)
            .await
            .0,
        0
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while tg.metric("otelcol_exporter_send_failed_spans_total") != Some(5.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the wrong name was not refused"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(tg.stderr().contains("TLS handshake"), "{}", tg.stderr());
    assert_eq!(sink.span_count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_receiver_refuses_clients_without_a_certificate() {
    let pki = Pki::new();
    let sink = Sink::start().await;
    let receiver = format!(
        "        tls:\n          cert_file: {}\n          key_file: {}\n          client_ca_file: {}",
        pki.path("server.pem"),
        pki.path("server-key.pem"),
        pki.path("ca.pem")
    );
    let tg = Tailgate::start(
        &exporter_config(&receiver, "      insecure: true", sink.addr),
        &["--cores", "1"],
    );
    let req = make_request(23, 1, 1, 5);
    let ok = support::export_tls(tg.grpc(), pki.client_config(true), &req).await;
    assert_eq!(ok.map(|r| r.0), Ok(0));
    sink.wait_spans(5).await;
    let refused = support::export_tls(
        tg.grpc(),
        pki.client_config(false),
        &make_request(24, 1, 1, 5),
    )
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate got {refused:?}"
    );
    assert_eq!(span_set(&sink.requests()), span_set(&[req]));
}
