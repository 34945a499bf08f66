//! TLS for the sync transport: the relay's certificate (self-signed, generated on first start),
//! its fingerprint that devices pin, the device certificate that carries the device's Ed25519 key
//! (mutual TLS), and the rustls configurations (TLS 1.3 only, ALPN `yilian/1`, 0-RTT resumption).
//!
//! The relay accepts any client certificate that carries an Ed25519 key and whose holder proves
//! it has the private key (the handshake signature); whether that key belongs to an enrolled,
//! non-revoked device is decided right after the handshake, against the directory, so that the
//! device is told why it is refused (see [`device_key_of`]).

use crate::identity::DeviceKey;
use crate::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
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
            .map_err(|e| Error::tls_caused("cannot generate the relay certificate", e))?;
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
    move |e| Error::tls_caused(what, e)
}

/// The name a device certificate carries (identity comes from its key, not its name).
const DEVICE_CERT_NAME: &str = "yilian-device";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// A self-signed certificate carrying the device's Ed25519 key, and that key as PKCS#8: what the
/// device presents to the relay. Made on the fly from the key kept in the store (or handed over
/// by the platform keystore), so nothing else needs storing.
pub fn device_certificate(key: &DeviceKey) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let signing = ed25519_dalek::SigningKey::from_bytes(&key.secret_bytes());
    let pkcs8 = signing.to_pkcs8_der().map_err(|e| Error::tls_caused("cannot encode the device key", e))?;
    let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec());
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
        .map_err(|e| Error::tls_caused("cannot use the device key", e))?;
    let cert = rcgen::CertificateParams::new(vec![DEVICE_CERT_NAME.to_string()])
        .and_then(|params| params.self_signed(&pair))
        .map_err(|e| Error::tls_caused("cannot make the device certificate", e))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
}

/// The Ed25519 key a certificate carries, if it carries one.
pub fn certificate_key(cert: &CertificateDer<'_>) -> Option<[u8; 32]> {
    let parsed = webpki::EndEntityCert::try_from(cert).ok()?;
    let spki = parsed.subject_public_key_info();
    let key = spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..])?;
    key.try_into().ok()
}

/// The device key the peer of a relay-side connection proved it holds (its client certificate).
pub fn device_key_of(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certs.first().and_then(certificate_key)
}

/// The relay's TLS configuration: TLS 1.3, ALPN `yilian/1`, a client certificate required (a
/// device's Ed25519 key), 0-RTT accepted (the protocol's first flight, a hello and idempotent
/// pushes, is safe to replay).
pub fn server_tls(identity: &RelayIdentity) -> Result<rustls::ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let provider = provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error("relay tls"))?
        .with_client_cert_verifier(Arc::new(DeviceCertificate { provider }))
        .with_single_cert(vec![CertificateDer::from(identity.cert_der.clone())], key)
        .map_err(tls_error("relay certificate"))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // QUIC requires exactly this value to enable 0-RTT.
    tls.max_early_data_size = u32::MAX;
    Ok(tls)
}

/// A device's TLS configuration: presents the device's certificate ([`device_certificate`]),
/// trusts exactly the relay whose certificate has `pinned` as its fingerprint, and keeps session
/// tickets for 0-RTT reconnects.
pub fn client_tls(pinned: Fingerprint, key: &DeviceKey) -> Result<rustls::ClientConfig> {
    let (cert, private) = device_certificate(key)?;
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_error("device tls"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedRelay { pinned, provider }))
        .with_client_auth_cert(vec![cert], private)
        .map_err(tls_error("device certificate"))?;
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

/// Accepts a client certificate that carries an Ed25519 key, once the client proved it holds the
/// private key (the handshake signature). Which device that is, and whether it may sync, is the
/// relay's decision after the handshake.
#[derive(Debug)]
struct DeviceCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for DeviceCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        match certificate_key(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                Error::tls("a device certificate must carry an Ed25519 key"),
            ))))),
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
        vec![SignatureScheme::ED25519]
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
    fn a_device_certificate_carries_the_device_key() {
        let key = DeviceKey::generate();
        let (cert, _) = device_certificate(&key).unwrap();
        assert_eq!(certificate_key(&cert), Some(key.public_key()));
        let relay = RelayIdentity::generate().unwrap();
        assert_eq!(certificate_key(&CertificateDer::from(relay.cert_der)), None, "the relay's key is not Ed25519");
        assert!(client_tls(relay_fingerprint_for_test(), &key).is_ok());
    }

    fn relay_fingerprint_for_test() -> Fingerprint {
        Fingerprint([7; 32])
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
