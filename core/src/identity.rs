//! The device's identity: an Ed25519 key that authors and signs every change the device makes.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::rngs::OsRng;
use std::fmt;

/// The device's signing key. Its public half is the automerge `Author` of every change the device
/// makes, so the relay can map each actor to the device that owns it.
#[derive(Clone)]
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        DeviceKey(SigningKey::generate(&mut OsRng))
    }

    /// A key from its 32 secret bytes (for a key held by the platform keystore).
    pub fn from_secret(bytes: [u8; 32]) -> Self {
        DeviceKey(SigningKey::from_bytes(&bytes))
    }

    /// The 32 secret bytes.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs a message (a change hash).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "DeviceKey({})", hex(&self.public_key()))
    }
}

/// Checks an Ed25519 signature made by `public_key` over `message`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    SignatureChecker::new(public_key).is_some_and(|checker| checker.verify(message, signature))
}

/// Checks many signatures of one key: the key is read (a point decompression) once, not per
/// signature (a relay checks every change of a phone's push against the phone's key). Each
/// signature is checked on its own, exactly as [`verify_signature`] does.
pub struct SignatureChecker(VerifyingKey);

impl SignatureChecker {
    /// A checker for `public_key`; `None` when it is not an Ed25519 public key.
    pub fn new(public_key: &[u8]) -> Option<SignatureChecker> {
        let key_bytes = <[u8; 32]>::try_from(public_key).ok()?;
        VerifyingKey::from_bytes(&key_bytes).ok().map(SignatureChecker)
    }

    /// Whether `signature` is the key's over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig_bytes) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        self.0.verify(message, &Signature::from_bytes(&sig_bytes)).is_ok()
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let key = DeviceKey::generate();
        let sig = key.sign(b"change-hash");
        assert!(verify_signature(&key.public_key(), b"change-hash", &sig));
        assert!(!verify_signature(&key.public_key(), b"other", &sig));
        assert!(!verify_signature(&DeviceKey::generate().public_key(), b"change-hash", &sig));
        assert!(!verify_signature(&[1, 2, 3], b"change-hash", &sig));
        let restored = DeviceKey::from_secret(key.secret_bytes());
        assert_eq!(restored.public_key(), key.public_key());
        assert!(!format!("{key:?}").contains(&hex(&key.secret_bytes())));
    }
}
