//! automerge-repo's lane: its WebSocket sync server (node, `tests/js/automerge-peer/peer.mjs
//! serve`, set up as automerge-repo-sync-server does) listening on the link's near end, and a
//! node client holding the same documents that dials the far end. Both run with the library's
//! defaults (5 s keep-alive on the server, 5 s retry on the client).

use super::dataset::{Dataset, Step};
use super::{EXIT_SLACK, Figures, Scenario};
use crate::link::Link;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// `tests/js/automerge-peer/peer.mjs`.
pub fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js/automerge-peer/peer.mjs")
}

/// Runs `peer.mjs` with `args` to completion; returns its stdout, failing with its stderr.
async fn peer(args: &[&str]) -> Result<String> {
    let out = Command::new("node").arg(peer_script()).args(args).output().await.context("running node")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("node peer.mjs {} failed: {stdout}{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// Seeds the server storage every lane copies: the dataset's documents, new ids in `state.json`.
pub async fn seed_template(dataset: &Dataset) -> Result<PathBuf> {
    let dir = dataset.dir.join("automerge-template");
    let _ = std::fs::remove_dir_all(&dir);
    let state = dataset.dir.join("automerge-state.json");
    let documents = path(&dataset.peer_documents);
    peer(&["seed", "--storage", path(&dir.join("server")), "--documents", documents, "--state", path(&state)]).await?;
    Ok(dir)
}

/// An automerge-repo lane on a link.
pub struct Lane {
    dir: PathBuf,
    template: PathBuf,
    /// The ids and heads the template was seeded with.
    seed_state: PathBuf,
    server: Option<(Child, u16)>,
}

/// Where NodeFSStorageAdapter keeps the key `["storage-adapter-id"]` (a key's first two
/// characters name a folder).
const STORAGE_ID_FILE: &str = "st/orage-adapter-id";

/// Copies a seeded storage folder with `cp -r`.
async fn copy_storage(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp").arg("-r").arg(from).arg(to).status().await?;
    if !status.success() {
        bail!("copying the automerge-repo storage {} to {} failed", from.display(), to.display());
    }
    Ok(())
}

impl Lane {
    /// Copies the seeded server storage for this lane and starts the server on the link's near end.
    pub async fn start(dir: &Path, dataset: &Dataset, template: &Path, link: &Link) -> Result<Lane> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        copy_storage(&template.join("server"), &dir.join("server")).await?;
        let seed_state = dataset.dir.join("automerge-state.json");
        std::fs::copy(&seed_state, dir.join("state.json"))?;
        let mut lane = Lane { dir: dir.to_path_buf(), template: template.to_path_buf(), seed_state, server: None };
        lane.serve(link).await?;
        Ok(lane)
    }

    async fn serve(&mut self, link: &Link) -> Result<()> {
        let mut child = Command::new("node")
            .arg(peer_script())
            .args(["serve", "--storage", path(&self.dir.join("server")), "--host", &link.near().to_string()])
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("READY ") {
                    return Ok(port.trim().parse::<u16>()?);
                }
            }
            bail!("the automerge-repo server exited before it was ready")
        })
        .await
        .context("the automerge-repo server did not start within 60 s")??;
        self.server = Some((child, ready));
        Ok(())
    }

    /// Stops the server (SIGTERM: it flushes its storage) and waits for it.
    async fn stop_server(&mut self) -> Result<()> {
        if let Some((mut child, _)) = self.server.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(60), child.wait()).await.is_err() {
                child.kill().await?;
            }
        }
        Ok(())
    }

    /// Puts `step` into the server's storage (made elsewhere in the consortium), restarting it.
    pub async fn deliver(&mut self, step: &Step, link: &Link) -> Result<()> {
        self.stop_server().await?;
        let (storage, state) = (self.dir.join("server"), self.dir.join("state.json"));
        peer(&["apply", "--storage", path(&storage), "--day", path(&step.peer_file), "--state", path(&state)]).await?;
        self.serve(link).await
    }

    /// Runs `scenario` with the client and measures it.
    pub async fn run(
        &self,
        link: &Link,
        scenario: Scenario,
        cut: Option<(u64, Duration)>,
        cap: Duration,
    ) -> Result<Figures> {
        let port = self.server.as_ref().map(|(_, port)| *port).context("the server is not running")?;
        let url = format!("ws://{}:{port}", link.far());
        let cap_arg = format!("{}", cap.as_secs_f64());
        let mut command = Command::new("node");
        command.arg(peer_script());
        command.args(["client", "--url", &url, "--storage", path(&self.dir.join("client"))]);
        command.args(["--state", path(&self.dir.join("state.json")), "--cap", &cap_arg]);
        let measured = super::measure(command, link, cut, cap).await?;
        if !measured.exited {
            // Still busy (loading or flushing thousands of documents) long after its cap: killed
            // and counted as not finished, with what the link carried.
            let detail = serde_json::json!({ "killed": format!("no result {EXIT_SLACK:?} after its cap") });
            return Ok(Figures {
                seconds: (cap + EXIT_SLACK).as_secs_f64(),
                documents_done: Some(0),
                progress_per_second: Some(0.0),
                ..Figures::carried(measured.carried, measured.recovery, cap, detail)
            });
        }
        let detail = measured.result.with_context(|| format!("the automerge-repo client of {scenario:?}"))?;
        Ok(Figures {
            complete: detail["complete"].as_bool() == Some(true),
            seconds: detail["seconds"].as_f64().unwrap_or(f64::NAN),
            rounds: detail["turns"].as_u64().unwrap_or(0),
            reconnects: detail["reconnects"].as_u64().unwrap_or(0),
            documents_done: detail["documents_done"].as_u64(),
            progress_per_second: detail["progress_per_second"].as_f64(),
            ..Figures::carried(measured.carried, measured.recovery, cap, detail)
        })
    }

    /// Gives the client, without the link, the state a finished scenario would have left. Used
    /// when the client hit its cap, so the next scenario starts where it assumes. `reseed`: the
    /// first sync did not finish, so the client gets the server's documents and then `steps`;
    /// otherwise it holds them already and only `steps` are applied (applying what it has is a
    /// no-op).
    ///
    /// The server's documents are the seeded template's files: `peer.mjs seed --ids-from` of
    /// the same documents writes the very same files (snapshots are named by their content
    /// hash), only with a storage id of its own. Five lanes re-seeding 2,000 documents in node
    /// at once took five minutes of the default run; the copy takes a second. The copy leaves out
    /// the server's storage id, so the client makes its own at its first start, as a seeded one
    /// does.
    pub async fn catch_up(&self, steps: &[&Step], reseed: bool) -> Result<()> {
        let client = self.dir.join("client");
        let scratch = self.dir.join("client-state.json");
        if reseed {
            let _ = std::fs::remove_dir_all(&client);
            copy_storage(&self.template.join("server"), &client).await?;
            let id = client.join(STORAGE_ID_FILE);
            std::fs::remove_file(&id).with_context(|| format!("removing the copied storage id {}", id.display()))?;
            // The ids and heads the template was seeded with (the lane's own state.json has
            // moved on with the steps the server gained since).
            std::fs::copy(&self.seed_state, &scratch)?;
        } else if !scratch.exists() {
            // The client synced its documents itself: `apply` needs only their ids.
            std::fs::copy(self.dir.join("state.json"), &scratch)?;
        }
        for step in steps {
            peer(&["apply", "--storage", path(&client), "--day", path(&step.peer_file), "--state", path(&scratch)])
                .await?;
        }
        Ok(())
    }

    /// Stops the server.
    pub async fn stop(mut self) -> Result<()> {
        self.stop_server().await
    }
}
