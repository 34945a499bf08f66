//! TLS for the sync transport: the relay's certificate (self-signed, generated on first start),
//! its fingerprint that devices pin, and the rustls configurations (TLS 1.3 only, ALPN
//! `yilian/1`, 0-RTT resumption).
//!
//! Until device enrollment lands the client presents no certificate; the server configuration is
//! built in one place ([`server_tls`]) so that mutual TLS replaces `with_no_client_auth` there.

use crate::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The application protocol negotiated on every connection.
pub const ALPN: &[u8] = b"yilian/1";

/// The name the relay's certificate carries and clients ask for (SNI). Trust comes from the
/// pinned fingerprint, not from the name.
pub const RELAY_SERVER_NAME: &str = "yilian-relay";

const CERT_FILE: &str = "relay-cert.der";
const KEY_FILE: &str = "relay-key.der";

/// SHA-256 of a certificate (DER), what a device pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(cert_der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(cert_der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", crate::identity::hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = Error;

    /// Accepts `sha256:<64 hex>`, or the hex alone, with or without `:` between bytes.
    fn from_str(s: &str) -> Result<Fingerprint> {
        let hex: String = s.trim().trim_start_matches("sha256:").chars().filter(|c| *c != ':').collect();
        let bad = || Error::invalid("relay.fingerprint", format!("{s:?} is not sha256:<64 hex digits>"));
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

/// The relay's certificate and private key (DER).
pub struct RelayIdentity {
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key, DER.
    pub key_der: Vec<u8>,
}

impl fmt::Debug for RelayIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayIdentity").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl RelayIdentity {
    /// A new self-signed certificate for the relay.
    pub fn generate() -> Result<RelayIdentity> {
        let generated = rcgen::generate_simple_self_signed(vec![RELAY_SERVER_NAME.into(), "localhost".into()])
            .map_err(|e| Error::Tls { reason: format!("cannot generate the relay certificate: {e}") })?;
        Ok(RelayIdentity { cert_der: generated.cert.der().to_vec(), key_der: generated.signing_key.serialize_der() })
    }

    /// Loads the identity kept in `dir`, generating and saving one on first start.
    pub fn load_or_generate(dir: &Path) -> Result<RelayIdentity> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        if cert_path.exists() && key_path.exists() {
            return Ok(RelayIdentity { cert_der: std::fs::read(cert_path)?, key_der: std::fs::read(key_path)? });
        }
        let identity = RelayIdentity::generate()?;
        std::fs::create_dir_all(dir)?;
        write_private(&key_path, &identity.key_der)?;
        std::fs::write(cert_path, &identity.cert_der)?;
        Ok(identity)
    }

    /// What devices pin.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.cert_der)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(std::fs::write(path, bytes)?)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_error(what: &str) -> impl Fn(rustls::Error) -> Error + '_ {
    move |e| Error::Tls { reason: format!("{what}: {e}") }
}

/// The relay's TLS configuration: TLS 1.3, ALPN `yilian/1`, 0-RTT accepted (the protocol's first
/// flight, a hello and idempotent pushes, is safe to replay).
pub fn server_tls(identity: &RelayIdentity) -> Result<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error("relay tls"))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
        .map_err(tls_error("relay certificate"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // QUIC requires exactly this value to enable 0-RTT.
    tls.max_early_data_size = u32::MAX;
    Ok(tls)
}

/// A device's TLS configuration: trusts exactly the relay whose certificate has `pinned` as its
/// fingerprint; keeps session tickets for 0-RTT reconnects.
pub fn client_tls(pinned: Fingerprint) -> Result<rustls::ClientConfig> {
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error("device tls"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedRelay { pinned, provider }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.enable_early_data = true;
    Ok(tls)
}

/// Accepts exactly one certificate, by fingerprint; the handshake signature is still verified,
/// so only the holder of that certificate's key passes.
#[derive(Debug)]
struct PinnedRelay {
    pinned: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedRelay {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if Fingerprint::of(end_entity) == self.pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse_back() {
        let identity = RelayIdentity::generate().unwrap();
        let printed = identity.fingerprint().to_string();
        assert!(printed.starts_with("sha256:"));
        assert_eq!(printed.parse::<Fingerprint>().unwrap(), identity.fingerprint());
        let err = "sha256:abcd".parse::<Fingerprint>().unwrap_err();
        assert!(err.to_string().starts_with("relay.fingerprint:"), "{err}");
    }

    #[test]
    fn the_identity_is_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = RelayIdentity::load_or_generate(dir.path()).unwrap();
        let again = RelayIdentity::load_or_generate(dir.path()).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert!(server_tls(&again).is_ok());
    }
}
