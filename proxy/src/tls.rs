//! The collector's `tls` blocks as rustls configurations (ring provider), built once at start-up.
//!
//! Clients dial TLS unless `insecure: true` (or an `http://` endpoint), verifying against `ca_file`
//! or the system roots; servers present `cert_file`/`key_file` and, with `client_ca_file`, require
//! client certificates (mTLS). ALPN offers `h2` for gRPC and `http/1.1` for OTLP/HTTP.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::common::{ClientTls, ServerTls};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let rank = |v: Option<&str>, default: u8| match v {
        None | Some("") => Ok(default),
        Some("1.2") => Ok(2),
        Some("1.3") => Ok(3),
        Some(other) => Err(format!(
            "TLS version {other:?} is not supported; allowed: 1.2, 1.3"
        )),
    };
    let (lo, hi) = (rank(min, 2)?, rank(max, 3)?);
    let mut out = Vec::new();
    if lo <= 2 && hi >= 2 {
        out.push(&rustls::version::TLS12);
    }
    if hi >= 3 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err("min_version is above max_version".to_owned());
    }
    Ok(out)
}

fn certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{path}: {e}"))?
        .collect();
    let certs = certs.map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no PEM certificates found"));
    }
    Ok(certs)
}

fn key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{path}: no usable PEM private key: {e}"))
}

fn roots(ca_file: Option<&str>, include_system: bool) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    if let Some(ca) = ca_file {
        for c in certs(ca)? {
            store.add(c).map_err(|e| format!("{ca}: {e}"))?;
        }
    }
    if ca_file.is_none() || include_system {
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = store.add(c);
        }
    }
    Ok(store)
}

/// A client configuration for an exporter (`alpn`: `h2` for gRPC).
pub fn client_config(t: &ClientTls, alpn: &[u8]) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(
            t.min_version.as_deref(),
            t.max_version.as_deref(),
        )?)
        .map_err(|e| e.to_string())?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        builder.with_root_certificates(roots(t.ca_file.as_deref(), t.include_system_ca_certs_pool)?)
    };
    let mut config = match (&t.cert_file, &t.key_file) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certs(c)?, key(k)?)
            .map_err(|e| format!("{c}: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert_file and key_file must be set together".to_owned()),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The name to verify: `server_name_override` or the endpoint's host.
pub fn server_name(t: &ClientTls, host: &str) -> Result<ServerName<'static>, String> {
    let name = t
        .server_name_override
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))
}

/// A server configuration for a receiver (`alpn`: `h2` or `http/1.1`).
pub fn server_config(t: &ServerTls, alpn: &[u8]) -> Result<Arc<ServerConfig>, String> {
    let (Some(cert), Some(k)) = (&t.cert_file, &t.key_file) else {
        return Err("cert_file and key_file are required".to_owned());
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(
            t.min_version.as_deref(),
            t.max_version.as_deref(),
        )?)
        .map_err(|e| e.to_string())?;
    let builder = match &t.client_ca_file {
        Some(ca) => {
            let store = roots(Some(ca), false)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(store),
                provider(),
            )
            .build()
            .map_err(|e| format!("{ca}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs(cert)?, key(k)?)
        .map_err(|e| format!("{cert}: {e}"))?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// `insecure_skip_verify: true`: accept any certificate (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
