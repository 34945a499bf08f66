//! A private network namespace for the lab: the TUN devices, addresses and servers of a run live
//! in a namespace made for it and vanish with it; nothing reaches the machine's own network.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Set in the environment of a program re-run inside its private namespace.
pub const INSIDE: &str = "YILIAN_LAB_NETNS";

/// Re-runs this program with the same arguments inside a new network namespace (with
/// `unshare --net`, as root; `--map-root-user` otherwise, where user namespaces are allowed) and
/// exits with its status. Inside (the re-run), brings loopback up and returns.
pub fn enter_private() -> Result<()> {
    enter(false)
}

/// [`enter_private`], in a private mount namespace too: mounts made inside (a small tmpfs for a
/// disk-full test) are the run's own and vanish with it.
pub fn enter_private_with_mounts() -> Result<()> {
    enter(true)
}

fn enter(mounts: bool) -> Result<()> {
    if std::env::var_os(INSIDE).is_some() {
        let up = Command::new("ip").args(["link", "set", "lo", "up"]).status().context("running ip (iproute2)")?;
        if !up.success() {
            bail!("could not bring loopback up in the lab's network namespace");
        }
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let mut unshare = Command::new("unshare");
    unshare.arg("--net");
    if mounts {
        unshare.arg("--mount");
    }
    if !is_root() {
        unshare.arg("--map-root-user");
    }
    let status = unshare
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .context("running unshare (util-linux) to make the lab's network namespace")?;
    std::process::exit(status.code().unwrap_or(1));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}
