//! API tokens: who may call what.
//!
//! A token is `apt_` and 64 hex digits of randomness. Only its SHA-256 is kept (in the tokens
//! file, and here), so a leaked file or heap dump gives no token, and a token is never logged:
//! the log names it by its `name`. Checking one hashes it and compares with every entry in
//! constant time, so the answer's timing says nothing about how close a guess was.
//!
//! Each token has a scope; a wider one includes the narrower: `read` (every GET: listings,
//! events, stats), `write` (spawn, terminate, tasks), `admin` (drain, and everything).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do; `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

agentpool_types::text_enum!(Scope {
    Read => "read",
    Write => "write",
    Admin => "admin",
});

/// The prefix of every token, so one found in a config or a log is recognised as such.
pub const TOKEN_PREFIX: &str = "apt_";
/// Longest `Authorization` value looked at; longer ones are refused unhashed.
const MAX_TOKEN_LEN: usize = 256;

/// One entry of the tokens file: a name for the log, a scope, and the token's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub scope: Scope,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// The tokens file: `[[tokens]]` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

/// The tokens the API accepts. Empty: the API is open (loopback only, or `--insecure`).
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Known>,
}

#[derive(Clone)]
struct Known {
    name: String,
    scope: Scope,
    digest: [u8; 32],
}

/// Who called, once their token was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` when the API is open.
    pub name: Option<String>,
    pub scope: Scope,
}

impl std::fmt::Debug for Tokens {
    /// Names and scopes only: a digest is no secret, but there is no reason to print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, Scope)> = self
            .entries
            .iter()
            .map(|k| (k.name.as_str(), k.scope))
            .collect();
        f.debug_struct("Tokens").field("entries", &names).finish()
    }
}

/// A presented token that matches none.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown token")]
pub struct UnknownToken;

/// A bad tokens file entry, by name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("token {name:?}: sha256 must be 64 hex digits")]
pub struct BadEntry {
    pub name: String,
}

impl Tokens {
    pub fn new(entries: &[TokenEntry]) -> Result<Self, BadEntry> {
        let entries = entries
            .iter()
            .map(|e| {
                let digest = parse_hex(&e.sha256).ok_or_else(|| BadEntry {
                    name: e.name.clone(),
                })?;
                Ok(Known {
                    name: e.name.clone(),
                    scope: e.scope,
                    digest,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }

    /// Whether the API is open: no token configured.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller a presented token stands for; `None` when it matches none. Every entry is
    /// compared, matched or not.
    pub fn check(&self, presented: &str) -> Option<Caller> {
        if presented.len() > MAX_TOKEN_LEN {
            return None;
        }
        let digest = digest(presented);
        let mut found = None;
        for k in &self.entries {
            if bool::from(k.digest.ct_eq(&digest)) {
                found = Some(Caller {
                    name: Some(k.name.clone()),
                    scope: k.scope,
                });
            }
        }
        found
    }
}

/// A fresh token: `apt_` and 32 random bytes in hex.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// The hex SHA-256 a tokens file keeps for `token`.
pub fn hash(token: &str) -> String {
    hex(&digest(token))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, scope: Scope, token: &str) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            scope,
            sha256: hash(token),
            created_at: None,
        }
    }

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        let tokens = Tokens::new(&[
            entry("ci", Scope::Write, &a),
            entry("ops", Scope::Admin, &b),
        ])
        .unwrap();
        assert_eq!(tokens.check(&a).map(|c| c.scope), Some(Scope::Write));
        assert_eq!(tokens.check(&b).and_then(|c| c.name), Some("ops".into()));
        assert_eq!(tokens.check("apt_nope"), None);
        assert_eq!(tokens.check(&"x".repeat(10_000)), None);
        assert!(
            !format!("{tokens:?}").contains(&hash(&a)),
            "no digest in Debug"
        );
    }

    #[test]
    fn scopes_are_ordered_and_bad_hashes_refused() {
        assert!(Scope::Read < Scope::Write && Scope::Write < Scope::Admin);
        assert_eq!("admin".parse::<Scope>(), Ok(Scope::Admin));
        let bad = TokenEntry {
            sha256: "zz".into(),
            ..entry("x", Scope::Read, "t")
        };
        assert_eq!(Tokens::new(&[bad]).unwrap_err().name, "x");
    }
}
