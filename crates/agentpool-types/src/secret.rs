//! An agent's `secret_config`: [`SecretConfig`] in clear, [`SealedSecret`] sealed under a
//! [`SecretKey`] with XChaCha20-Poly1305.
//!
//! The master seals a secret as soon as a spawn request is read; from then on only the sealed
//! form travels (store, registry, socket, commands) until the worker opens it just before it
//! starts the agent's handler. The agent's id is the associated data, so a sealed secret copied
//! onto another agent does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Bytes of a key.
pub const SECRET_KEY_LEN: usize = 32;
/// Bytes of the random nonce that starts every sealed secret.
const NONCE_LEN: usize = 24;
/// What `Debug` shows instead of a secret.
const REDACTED: &str = "[redacted]";

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("there is no key to seal or open secret_config with")]
    NoKey,
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
    #[error("a secret key is {SECRET_KEY_LEN} bytes, got {0}")]
    KeyLength(usize),
    #[error("the sealed secret is not base64 of a nonce and a ciphertext")]
    Malformed,
    #[error("the sealed secret does not open with this key (another key, or another agent's)")]
    WrongKey,
    #[error("the sealed secret is not a JSON object: {0}")]
    NotJson(String),
}

/// A `secret_config` object in clear. It has no `Serialize`: the only ways out are
/// [`SecretKey::seal`] and [`SecretConfig::expose_json`], which the worker calls as it hands
/// the secret to the agent's program.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct SecretConfig(Value);

impl SecretConfig {
    pub fn new(value: Value) -> Self {
        Self(value)
    }

    /// The secret as JSON text, for the agent's handler only.
    pub fn expose_json(&self) -> String {
        self.0.to_string()
    }

    /// The secret as a JSON value, for the agent's handler only.
    pub fn expose(&self) -> &Value {
        &self.0
    }
}

impl fmt::Debug for SecretConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A sealed secret: base64 of nonce and ciphertext. Safe to store and send, useless without
/// the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// A sealed secret as stored (base64 text); checked only when opened.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[sealed]")
    }
}

/// The key secrets are sealed under. It travels to a worker inside its environment, as
/// base64, never on a command line.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; SECRET_KEY_LEN]);

impl SecretKey {
    /// A fresh key of random bytes from the operating system.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0u8; SECRET_KEY_LEN];
        getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretError> {
        let bytes = bytes
            .try_into()
            .map_err(|_| SecretError::KeyLength(bytes.len()))?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; SECRET_KEY_LEN] {
        &self.0
    }

    /// Seals `secret` for the agent `agent_id`, under a fresh random nonce.
    pub fn seal(&self, secret: &SecretConfig, agent_id: &str) -> Result<SealedSecret, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecretError::Random(e.to_string()))?;
        let plain = secret.expose_json();
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: agent_id.as_bytes(),
        };
        let sealed = self
            .cipher()
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SecretError::WrongKey)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(SealedSecret(STANDARD.encode(out)))
    }

    /// Opens a secret sealed for the agent `agent_id` under this key.
    pub fn open(&self, sealed: &SealedSecret, agent_id: &str) -> Result<SecretConfig, SecretError> {
        let bytes = STANDARD
            .decode(&sealed.0)
            .map_err(|_| SecretError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: agent_id.as_bytes(),
        };
        let plain = self
            .cipher()
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SecretError::WrongKey)?;
        let value =
            serde_json::from_slice(&plain).map_err(|e| SecretError::NotJson(e.to_string()))?;
        Ok(SecretConfig(value))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seals_and_opens_for_the_same_agent_only() {
        let key = SecretKey::generate().unwrap();
        let secret = SecretConfig::new(json!({"api_key": "sk-123"}));
        let sealed = key.seal(&secret, "a1").unwrap();
        assert!(!sealed.as_str().contains("sk-123"));
        assert_eq!(key.open(&sealed, "a1").unwrap(), secret);
        assert_eq!(key.open(&sealed, "a2"), Err(SecretError::WrongKey));
        let other = SecretKey::generate().unwrap();
        assert_eq!(other.open(&sealed, "a1"), Err(SecretError::WrongKey));
        let junk = SealedSecret::from_text("not base64!");
        assert_eq!(key.open(&junk, "a1"), Err(SecretError::Malformed));
    }

    #[test]
    fn debug_never_shows_a_secret_or_key() {
        let key = SecretKey::generate().unwrap();
        let secret = SecretConfig::new(json!({"api_key": "sk-123"}));
        let sealed = key.seal(&secret, "a1").unwrap();
        let shown = format!("{secret:?} {key:?} {sealed:?}");
        assert_eq!(shown, "[redacted] [redacted] [sealed]");
    }

    #[test]
    fn key_round_trips_through_json() {
        let key = SecretKey::generate().unwrap();
        let text = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<SecretKey>(&text).unwrap(), key);
        assert!(serde_json::from_str::<SecretKey>("\"c2hvcnQ=\"").is_err());
    }
}
