//! `agentpool token`: API tokens. `create` prints a new token once and keeps only its hash in
//! the tokens file (created 0600 in a 0700 directory); `list` shows names and scopes; `revoke`
//! removes one. A running master reads the file at start: restart it to apply a change.

use crate::config;
use agentpool_master::auth::{self, Scope, TokenEntry, TokensFile};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token: printed once, its SHA-256 written to the tokens file.
    Create {
        /// read (GET routes), write (spawn, terminate, tasks) or admin (drain, everything).
        #[arg(long)]
        scope: Scope,
        /// A name for the log and for `revoke` [default: token-<n>].
        #[arg(long)]
        name: Option<String>,
        /// Config file naming the tokens file (`[auth] tokens_file`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// List the tokens' names and scopes (the tokens themselves are not kept).
    List {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove a token by name.
    Revoke {
        name: String,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Create {
            scope,
            name,
            config,
        } => create(&config::tokens_file(config.as_deref())?, scope, name),
        Command::List { config } => list(&config::tokens_file(config.as_deref())?),
        Command::Revoke { name, config } => revoke(&config::tokens_file(config.as_deref())?, &name),
    }
}

fn create(path: &Path, scope: Scope, name: Option<String>) -> Result<()> {
    let mut file = read(path)?;
    let name = name.unwrap_or_else(|| format!("token-{}", file.tokens.len() + 1));
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_graphic()) {
        bail!("token name {name:?}: 1-64 printable ASCII characters without spaces");
    }
    if file.tokens.iter().any(|t| t.name == name) {
        bail!(
            "a token named {name:?} exists in {}; revoke it first or pick another name",
            path.display()
        );
    }
    let token = auth::generate().context("cannot read random bytes for a token")?;
    file.tokens.push(TokenEntry {
        name: name.clone(),
        scope,
        sha256: auth::hash(&token),
        created_at: Some(agentpool_types::now_rfc3339()),
    });
    write(path, &file)?;
    println!("{token}");
    eprintln!(
        "token {name:?} ({scope}) created; its hash is in {}. It is shown only now: keep it \
         (send it as `Authorization: Bearer <token>`, or set AGENTPOOL_TOKEN for the CLI). \
         Restart the master to apply.",
        path.display()
    );
    Ok(())
}

fn list(path: &Path) -> Result<()> {
    let file = read(path)?;
    if file.tokens.is_empty() {
        println!(
            "no tokens in {}: the API is open on loopback only",
            path.display()
        );
    }
    for t in &file.tokens {
        let created = t.created_at.as_deref().unwrap_or("-");
        println!("{:<24} {:<6} {created}", t.name, t.scope);
    }
    Ok(())
}

fn revoke(path: &Path, name: &str) -> Result<()> {
    let mut file = read(path)?;
    let before = file.tokens.len();
    file.tokens.retain(|t| t.name != name);
    if file.tokens.len() == before {
        bail!("no token named {name:?} in {}", path.display());
    }
    write(path, &file)?;
    println!("token {name:?} revoked; restart the master to apply");
    Ok(())
}

fn read(path: &Path) -> Result<TokensFile> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            toml::from_str(&text).with_context(|| format!("invalid tokens file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokensFile::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read tokens file {}", path.display())),
    }
}

/// Writes the file whole, readable by its owner only, through a temporary file and a rename
/// so a reader never sees half of it.
fn write(path: &Path, file: &TokensFile) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = format!(
        "# agentpool API tokens: SHA-256 hashes, never the tokens. Managed by `agentpool token`.\n{}",
        toml::to_string(file).context("cannot write the tokens file")?
    );
    let tmp = path.with_extension("toml.tmp");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
