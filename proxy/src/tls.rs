//! The collector's `tls` blocks as rustls configurations (ring provider), built once at start-up.
//!
//! Clients dial TLS unless `insecure: true` (or an `http://` endpoint), verifying against `ca_file`
//! or the system roots; servers present `cert_file`/`key_file` and, with `client_ca_file`, require
//! client certificates (mTLS). ALPN offers `h2` for gRPC and `http/1.1` for OTLP/HTTP.
//!
//! Rotation without restart (configtls `reload_interval`, `client_ca_file_reload`): the configs
//! keep their identity, but their certificate (server or client) comes from a resolver and the
//! server's client-CA check from a verifier that each hold the current value in an `ArcSwap`. A
//! reloader thread per config re-reads the files and swaps in what changed; each handshake loads
//! the current value once, so new connections use new files and existing ones are untouched. A
//! file that does not parse keeps the previous value (logged). The thread ends when its config
//! has been dropped.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};

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
    let reload = t.reload_interval.map(|d| d.0).filter(|d| !d.is_zero());
    let mut config = match (&t.cert_file, &t.key_file, reload) {
        (Some(c), Some(k), Some(every)) => {
            builder.with_client_cert_resolver(ReloadingCert::start(c, k, every)?)
        }
        (Some(c), Some(k), None) => builder
            .with_client_auth_cert(certs(c)?, key(k)?)
            .map_err(|e| format!("{c}: {e}"))?,
        (None, None, _) => builder.with_no_client_auth(),
        _ => return Err("cert_file and key_file must be set together".to_owned()),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// What a client dials TLS with: the rustls configuration and the name the server must prove.
pub type ClientSetup = (Arc<ClientConfig>, ServerName<'static>);

/// The one way an exporter's client TLS is built: the configuration of the `tls` block `t` for
/// `alpn`, verifying `host` (or `server_name_override`).
pub fn client_setup(t: &ClientTls, host: &str, alpn: &[u8]) -> Result<ClientSetup, String> {
    Ok((client_config(t, alpn)?, server_name(t, host)?))
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

/// The name a client verifies when `tls_on` (`None` for plaintext): [`server_name`], checked
/// at validation so that starting an exporter cannot fail on it. Also returns the key a bad name
/// came from, relative to the exporter (`tls.server_name_override` or `endpoint`).
pub fn verified_name(
    t: &ClientTls,
    tls_on: bool,
    host: &str,
) -> Result<Option<ServerName<'static>>, (&'static str, String)> {
    if !tls_on {
        return Ok(None);
    }
    let key = if t
        .server_name_override
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        "tls.server_name_override"
    } else {
        "endpoint"
    };
    server_name(t, host).map(Some).map_err(|e| (key, e))
}

/// The client TLS of an exporter whose server name validation kept ([`verified_name`]): `None`
/// for plaintext; fails only on the TLS material (files read now).
pub fn client_setup_named(
    t: &ClientTls,
    name: Option<&ServerName<'static>>,
    alpn: &[u8],
) -> Result<Option<ClientSetup>, String> {
    let Some(name) = name else {
        return Ok(None);
    };
    Ok(Some((client_config(t, alpn)?, name.clone())))
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
        Some(ca) if t.client_ca_file_reload => {
            builder.with_client_cert_verifier(ReloadingClientCa::start(ca, CA_POLL)?)
        }
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = match t.reload_interval.map(|d| d.0).filter(|d| !d.is_zero()) {
        Some(every) => builder.with_cert_resolver(ReloadingCert::start(cert, k, every)?),
        None => builder
            .with_single_cert(certs(cert)?, key(k)?)
            .map_err(|e| format!("{cert}: {e}"))?,
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

fn client_verifier(ca: &str) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let store = roots(Some(ca), false)?;
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|e| format!("{ca}: {e}"))
}

// === reloading ===

/// How often `client_ca_file_reload` looks at the CA file (the collector watches it with
/// fsnotify; a stat-and-read per second is close enough and needs no extra dependency).
const CA_POLL: Duration = Duration::from_secs(1);

fn certified_key(cert: &str, k: &str) -> Result<Arc<CertifiedKey>, String> {
    let signer = provider()
        .key_provider
        .load_private_key(key(k)?)
        .map_err(|e| format!("{k}: {e}"))?;
    let ck = CertifiedKey::new(certs(cert)?, signer);
    ck.keys_match().map_err(|e| format!("{cert}: {e}"))?;
    Ok(Arc::new(ck))
}

/// Re-reads `files` every `every` on its own thread and calls `reload` when their bytes changed,
/// until `target` has been dropped.
fn watch_files<T: Send + Sync + 'static>(
    target: Weak<T>,
    files: Vec<String>,
    every: Duration,
    reload: impl Fn(&T) -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let read = move || {
        files
            .iter()
            .map(std::fs::read)
            .collect::<Result<Vec<_>, _>>()
            .ok()
    };
    let mut last = read();
    std::thread::Builder::new()
        .name("tailgate-tls-reload".to_owned())
        .spawn(move || loop {
            std::thread::sleep(every);
            let Some(t) = target.upgrade() else { return };
            let now = read();
            if now.is_some() && now != last {
                match reload(&t) {
                    Ok(()) => {
                        tracing::info!("TLS files reloaded");
                        last = now;
                    }
                    Err(e) => tracing::warn!("TLS reload failed, keeping the previous files: {e}"),
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the TLS reload thread: {e}"))
}

/// A certificate and key re-read from their files (`reload_interval`), for servers and clients.
#[derive(Debug)]
struct ReloadingCert {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadingCert {
    fn start(cert: &str, key: &str, every: Duration) -> Result<Arc<ReloadingCert>, String> {
        let me = Arc::new(ReloadingCert {
            current: ArcSwap::new(certified_key(cert, key)?),
        });
        let (c, k) = (cert.to_owned(), key.to_owned());
        watch_files(
            Arc::downgrade(&me),
            vec![c.clone(), k.clone()],
            every,
            move |me: &ReloadingCert| {
                me.current.store(certified_key(&c, &k)?);
                Ok(())
            },
        )?;
        Ok(me)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client-CA check of an mTLS server, rebuilt when `client_ca_file` changes. It sends no CA
/// names in its certificate request (the names would have to outlive a swap), which clients read
/// as "any certificate": they send theirs and it is verified as before.
#[derive(Debug)]
struct ReloadingClientCa {
    current: ArcSwap<Arc<dyn ClientCertVerifier>>,
}

impl ReloadingClientCa {
    fn start(ca: &str, every: Duration) -> Result<Arc<ReloadingClientCa>, String> {
        let me = Arc::new(ReloadingClientCa {
            current: ArcSwap::from_pointee(client_verifier(ca)?),
        });
        let path = ca.to_owned();
        watch_files(
            Arc::downgrade(&me),
            vec![path.clone()],
            every,
            move |me: &ReloadingClientCa| {
                me.current.store(Arc::new(client_verifier(&path)?));
                Ok(())
            },
        )?;
        Ok(me)
    }
}

impl ClientCertVerifier for ReloadingClientCa {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current
            .load()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.current
            .load()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.current.load().supported_verify_schemes()
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::duration::GoDuration;

    fn leaf(dir: &std::path::Path, name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let tmp = dir.join("tmp");
        std::fs::write(&tmp, cert.pem()).unwrap();
        std::fs::rename(&tmp, dir.join("cert.pem")).unwrap();
        std::fs::write(&tmp, key.serialize_pem()).unwrap();
        std::fs::rename(&tmp, dir.join("key.pem")).unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn client_certificate_is_reloaded_after_rotation() {
        let dir = std::env::temp_dir().join(format!("tailgate-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = leaf(&dir, "a.test");
        let t = ClientTls {
            cert_file: Some(dir.join("cert.pem").to_str().unwrap().to_owned()),
            key_file: Some(dir.join("key.pem").to_str().unwrap().to_owned()),
            reload_interval: Some(GoDuration(Duration::from_millis(20))),
            insecure_skip_verify: true,
            ..ClientTls::default()
        };
        let config = client_config(&t, b"h2").unwrap();
        let current = || {
            let ck = config
                .client_auth_cert_resolver
                .resolve(&[], &[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
                .unwrap();
            ck.cert[0].to_vec()
        };
        assert_eq!(current(), a);
        let b = leaf(&dir, "b.test");
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while current() != b {
            assert!(std::time::Instant::now() < until, "cert b never loaded");
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn client_ca_is_reloaded_after_rotation() {
        let dir = std::env::temp_dir().join(format!("tailgate-ca-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str| {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = p.self_signed(&key).unwrap();
            (cert, key)
        };
        let (ca1, _) = ca("ca one");
        let (ca2, ca2_key) = ca("ca two");
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca2, &ca2_key)
            .unwrap();
        let path = dir.join("ca.pem");
        let write = |pem: String| {
            let tmp = dir.join("tmp");
            std::fs::write(&tmp, pem).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        };
        write(ca1.pem());
        let v =
            ReloadingClientCa::start(path.to_str().unwrap(), Duration::from_millis(20)).unwrap();
        let verify = || {
            v.verify_client_cert(client.der(), &[], UnixTime::now())
                .is_ok()
        };
        assert!(!verify(), "a client of another CA passed");
        write(ca2.pem());
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !verify() {
            assert!(
                std::time::Instant::now() < until,
                "the new CA was never loaded"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
