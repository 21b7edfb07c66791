//! Rotated certificate files are picked up without a restart (configtls `reload_interval`): new
//! connections get the new certificate, connections made before keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::{make_request, Tailgate};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tailgate reload CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A `localhost` certificate named `cn`: (cert PEM, key PEM, cert DER).
    fn leaf(&self, cn: &str) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// Replaces `path` atomically (write aside, rename), as secret volume updates do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn client_config(ca_pem: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    c.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(c)
}

/// Connects with TLS; returns the stream and the certificate the server presented.
async fn connect(
    tg: &Tailgate,
    config: &Arc<rustls::ClientConfig>,
) -> (
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    Vec<u8>,
) {
    let tcp = tokio::net::TcpStream::connect(tg.grpc()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    (tls, presented)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_server_certificate_is_served_to_new_connections() {
    let dir: PathBuf = support::scratch_dir();
    let ca = Ca::new();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    let (a_pem, a_key, a_der) = ca.leaf("cert A");
    let (b_pem, b_key, b_der) = ca.leaf("cert B");
    let (cert, key) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&cert, a_pem).unwrap();
    std::fs::write(&key, a_key).unwrap();
    let config = format!(
        "
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
        tls: {{cert_file: {}, key_file: {}, reload_interval: 100ms}}
exporters:
  nop:
service:
  telemetry: {{metrics: {{address: 127.0.0.1:0}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [nop]}}
",
        cert.display(),
        key.display()
    );
    let tg = Tailgate::start(&config, &["--cores", "1"]);
    let client = client_config(&dir.join("ca.pem"));

    let (old, presented) = connect(&tg, &client).await;
    assert_eq!(presented, a_der, "cert A first");
    let (old_client, conn) = h2::client::handshake(old).await.unwrap();
    tokio::spawn(conn);

    replace(&cert, &b_pem);
    replace(&key, &b_key);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, presented) = connect(&tg, &client).await;
        if presented == b_der {
            break;
        }
        assert_eq!(presented, a_der);
        assert!(Instant::now() < until, "cert B was never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The connection made with cert A is untouched.
    let (code, msg) =
        support::send_on_client(old_client, tg.grpc(), &make_request(80, 1, 1, 2)).await;
    assert_eq!(code, 0, "{msg}");
    // A torn or broken file keeps the last good certificate.
    replace(&cert, "not a certificate");
    let until = Instant::now() + Duration::from_secs(10);
    while !tg.stderr().contains("TLS reload failed") {
        assert!(Instant::now() < until, "the broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, presented) = connect(&tg, &client).await;
    assert_eq!(presented, b_der);
}
