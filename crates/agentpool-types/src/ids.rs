//! Identifiers. All are uuid v7 so they sort by creation time in `redis-cli` output.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Clone,
            Debug,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Wraps an id read from the registry or a request, after a size check.
            pub fn parse(s: &str) -> Option<Self> {
                let ok = !s.is_empty()
                    && s.len() <= MAX_ID_LEN
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                ok.then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// When the id was made (Unix ms), for a uuid v7; `None` for other ids.
            pub fn created_ms(&self) -> Option<u64> {
                let (secs, nanos) = uuid::Uuid::parse_str(&self.0)
                    .ok()?
                    .get_timestamp()?
                    .to_unix();
                Some(secs * 1000 + u64::from(nanos / 1_000_000))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Longest id accepted from outside; a uuid is 36.
pub const MAX_ID_LEN: usize = 64;

id_type!(
    AgentId,
    "Identifies one agent for its whole life, across reschedules."
);
id_type!(
    ProcessId,
    "Identifies one worker process. Never reused, even by the same pid."
);
id_type!(
    TaskId,
    "Identifies one task for its whole life, across retries."
);
