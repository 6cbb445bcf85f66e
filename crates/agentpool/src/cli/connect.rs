//! Where the master is and how long to wait for it: a flag, else the environment, else the
//! default. Shared by the client subcommands and the benches.

use super::DEFAULT_URL;
use super::client::Client;
use anyhow::{Context, Result};
use std::time::Duration;

pub const ENV_URL: &str = "AGENTPOOL_URL";
pub const ENV_TIMEOUT: &str = "AGENTPOOL_TIMEOUT";
/// The API token the client sends (see `agentpool token create`).
pub const ENV_TOKEN: &str = "AGENTPOOL_TOKEN";
/// Long enough for a spawn that starts workers (seconds on a loaded machine), short enough
/// that a master that accepts connections and never answers is noticed.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection options. The environment is read here rather than by clap, because clap
/// takes an empty variable as an empty URL, and empty environment values mean unset.
#[derive(clap::Args, Clone, Debug)]
pub struct Connection {
    /// Base URL of the master [env: AGENTPOOL_URL] [default: http://127.0.0.1:8000].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Seconds to wait for each answer of the master [env: AGENTPOOL_TIMEOUT] [default: 30].
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    timeout: Option<Duration>,
}

impl Connection {
    pub fn url(&self) -> String {
        resolve(self.url.as_deref(), env(ENV_URL).as_deref(), DEFAULT_URL)
    }

    pub fn timeout(&self) -> Result<Duration> {
        if let Some(t) = self.timeout {
            return Ok(t);
        }
        match env(ENV_TIMEOUT) {
            Some(text) => parse_secs(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{ENV_TIMEOUT}={text:?} is not a timeout in seconds")),
            None => Ok(DEFAULT_TIMEOUT),
        }
    }

    pub fn client(&self) -> Result<Client> {
        Client::new(&self.url(), self.timeout()?, env(ENV_TOKEN).as_deref())
    }
}

/// A positive number of seconds, e.g. `30` or `0.5`.
pub(crate) fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!(
            "expected a positive number of seconds, got {text:?}"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

/// A set, non-empty variable.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The flag, then the environment, then the default.
fn resolve(flag: Option<&str>, env: Option<&str>, default: &str) -> String {
    flag.or(env).unwrap_or(default).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_then_environment_then_default() {
        let d = DEFAULT_URL;
        assert_eq!(
            resolve(Some("http://a:1"), Some("http://b:2"), d),
            "http://a:1"
        );
        assert_eq!(resolve(None, Some("http://b:2"), d), "http://b:2");
        assert_eq!(resolve(None, None, d), d);
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(parse_secs("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_secs(" 0.5 "), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "abc", "", "inf", "NaN"] {
            assert!(parse_secs(bad).is_err(), "{bad:?}");
        }
    }
}
