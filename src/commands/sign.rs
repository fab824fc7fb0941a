//! `strata key generate`, `strata sign` and `strata verify` (docs/signing.md).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use strata::oci::Reference;
use strata::registry::Client;
use strata::sign::{self, keys};

use super::out;
use super::progress::CliReporter;
use super::push::RegistryArgs;
use crate::GlobalArgs;

/// Manage signing keys.
#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

/// Key subcommands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new ECDSA P-256 key pair: PREFIX.key (encrypted with the
    /// password in STRATA_KEY_PASSWORD or COSIGN_PASSWORD, mode 0600) and
    /// PREFIX.pub. Existing files are never overwritten.
    Generate {
        /// Path prefix of the two files.
        #[arg(default_value = "strata")]
        prefix: PathBuf,
    },
}

/// Sign an image in a registry (and each platform image of an index).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// HOST[:PORT]/NAME[:TAG|@DIGEST].
    pub reference: String,
    /// The private key: a file, or env://VAR for the PEM text in a variable.
    /// Its password comes from STRATA_KEY_PASSWORD (or COSIGN_PASSWORD).
    #[arg(long, value_name = "KEY")]
    pub key: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print a JSON summary of what was signed.
    #[arg(long)]
    pub json: bool,
}

/// Verify an image's signatures with a public key (exit 0: signed; 1: not).
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// HOST[:PORT]/NAME[:TAG|@DIGEST].
    pub reference: String,
    /// The public key: a file, or env://VAR.
    #[arg(long, value_name = "PUB")]
    pub key: String,
    /// The repository (HOST/NAME) the signature must name. Default: the
    /// repository of REFERENCE (set this for images copied to another registry).
    #[arg(long, value_name = "REPO")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the verdicts as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn key(args: KeyArgs) -> anyhow::Result<()> {
    match args.command {
        KeyCommand::Generate { prefix } => {
            let password = keys::password_from_env()?;
            let (k, p) = keys::write_key_pair(&prefix, &password)?;
            eprintln!("wrote {} (private, encrypted) and {} (public)", k.display(), p.display());
            Ok(())
        }
    }
}

fn client(registry: &RegistryArgs, global: &GlobalArgs) -> anyhow::Result<Client> {
    Ok(Client::new(registry.options(global)?, Arc::new(CliReporter::new(global.quiet)))?)
}

/// Signs `r` with the key at `key` and reports what was signed.
pub fn sign_and_report(
    c: &Client,
    r: &Reference,
    k: &p256::ecdsa::SigningKey,
    quiet: bool,
) -> anyhow::Result<Vec<sign::Signed>> {
    let signed = sign::sign_image(c, r, k)?;
    if !quiet {
        for s in &signed {
            let what = if s.added { "signed" } else { "already signed" };
            eprintln!("{what} {}@{} as {} (tag {})", r.repo_display(), s.digest, s.identity, s.tag);
        }
    }
    Ok(signed)
}

pub fn sign(args: SignArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let r = Reference::parse(&args.reference)?;
    // The key is opened before anything goes to the registry.
    let k = keys::load_private_key(&args.key)?;
    let c = client(&args.registry, global)?;
    let signed = sign_and_report(&c, &r, &k, global.quiet)?;
    if args.json {
        out(&serde_json::to_string_pretty(&signed)?)?;
    } else if let Some(s) = signed.first() {
        out(&s.digest.to_string())?;
    }
    Ok(())
}

pub fn verify(args: VerifyArgs, global: &GlobalArgs) -> anyhow::Result<bool> {
    let r = Reference::parse(&args.reference)?;
    let k = keys::load_public_key(&args.key)?;
    let c = client(&args.registry, global)?;
    let verdicts = sign::verify_image(&c, &r, &k, args.identity.as_deref())?;
    let ok = verdicts.iter().all(|v| v.result.is_ok());
    if args.json {
        out(&serde_json::to_string_pretty(&serde_json::json!({"verified": ok, "manifests": verdicts}))?)?;
    }
    for v in &verdicts {
        match &v.result {
            Ok(id) if !args.json => out(&format!("verified {}@{} (signed for {id})", r.repo_display(), v.digest))?,
            Ok(_) => {}
            Err(reason) => eprintln!("error: {}@{}: {reason}", r.repo_display(), v.digest),
        }
    }
    Ok(ok)
}
