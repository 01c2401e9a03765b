//! `percore get|put|del`: the first thing a new user types.
//!
//! Exit codes: 0 done, 1 key not found (`get`), 2 error. An operation the
//! node refuses is an error whose one line says what the refusal means
//! (`wire::msg::OpError::meaning`), e.g. "not durable: the node's log disk
//! is full or failing; nothing was written".

use crate::cmd::target::TargetArgs;
use clap::Args;
use std::io::{Read, Write};

/// `percore get KEY`
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The key.
    pub key: String,
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
}

/// `percore put KEY VALUE`
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value; `-` reads it from standard input.
    pub value: String,
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
}

/// `percore del KEY`
#[derive(Args, Debug)]
pub struct DelArgs {
    /// The key.
    pub key: String,
    #[command(flatten)]
    /// Where the cluster is.
    pub target: TargetArgs,
}

/// Prints the value (and a newline); `Ok(false)` if the key is absent.
pub fn get(args: &GetArgs) -> Result<bool, wire::Error> {
    let mut client = args.target.client()?;
    match client.get(args.key.as_bytes())? {
        Some(value) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&value);
            let _ = out.write_all(b"\n");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Stores the value and prints `OK`.
pub fn put(args: &PutArgs) -> Result<(), wire::Error> {
    let value = if args.value == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v).map_err(|source| wire::Error::Io { addr: "stdin".into(), source })?;
        v
    } else {
        args.value.clone().into_bytes()
    };
    let mut client = args.target.client()?;
    client.put(args.key.as_bytes(), &value)?;
    println!("OK");
    Ok(())
}

/// Deletes the key and prints `OK`.
pub fn del(args: &DelArgs) -> Result<(), wire::Error> {
    let mut client = args.target.client()?;
    client.delete(args.key.as_bytes())?;
    println!("OK");
    Ok(())
}
