//! The production relay (`yilian-relay serve`) as a child process: started on free loopback
//! ports, watched through its `/metrics` and `/proc`, stopped with SIGTERM.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use yilian_core::net::Fingerprint;

/// `yilian-relay` next to the running binary (cargo puts every binary of a build in one folder).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("the binary has no folder")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!("{} not found: build it first (cargo build -p yilian-relay)", path.display());
    }
    Ok(path)
}

/// The relay's certificate fingerprint (made on first use of the data directory).
pub async fn fingerprint(binary: &Path, data: &Path) -> Result<Fingerprint> {
    let out = Command::new(binary).args(["fingerprint", "--data-dir"]).arg(data).output().await?;
    if !out.status.success() {
        bail!("yilian-relay fingerprint failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let pin = text.split_whitespace().find_map(|w| w.parse::<Fingerprint>().ok());
    pin.with_context(|| format!("no fingerprint in {text:?}"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running relay process.
pub struct RelayProcess {
    child: Child,
    /// Its QUIC address.
    pub quic: SocketAddr,
    /// Its HTTP address.
    pub http: SocketAddr,
}

/// One reading of the relay's counters.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Since sampling started.
    pub at: Duration,
    /// `yilian_relay_ingested_changes`.
    pub ingested: u64,
    /// `yilian_relay_connected_devices`.
    pub connected: u64,
    /// CPU seconds the relay process had used.
    pub relay_cpu: f64,
    /// CPU seconds this process (the load side) had used.
    pub load_cpu: f64,
    /// `yilian_relay_store_busy_seconds`: time the store's connection had been held.
    pub store_busy: f64,
    /// `yilian_relay_store_wait_seconds`: time callers had waited for it.
    pub store_wait: f64,
    /// `yilian_relay_ingest_groups`: transactions that had stored pushes.
    pub ingest_groups: f64,
    /// `yilian_relay_ingest_pushes`: pushes they had stored.
    pub ingest_pushes: f64,
    /// `yilian_relay_ingest_seconds` by kind: the store's time storing pushes spent applying,
    /// writing and committing.
    pub ingest_time: [f64; 3],
}

/// Samples taken in the background until [`Sampler::stop`].
pub struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Stops sampling; returns the samples.
    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

impl RelayProcess {
    /// Starts `yilian-relay serve` on `data` on free loopback ports and waits until it is ready.
    pub async fn start(binary: &Path, data: &Path) -> Result<RelayProcess> {
        let quic: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        Self::start_at(binary, data, quic, http).await
    }

    /// Starts `yilian-relay serve` on `data` listening on `quic` and `http`; waits until ready.
    pub async fn start_at(binary: &Path, data: &Path, quic: SocketAddr, http: SocketAddr) -> Result<RelayProcess> {
        let child = Command::new(binary)
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(["--listen", &quic.to_string(), "--http", &http.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let relay = RelayProcess { child, quic, http };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(body) = get(http, "/readyz").await
                && body.starts_with("HTTP/1.1 200")
            {
                return Ok(relay);
            }
            // Polling /readyz, bounded by the deadline above.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the relay was not ready within 60 s")
    }

    /// Reads `ingested_changes`, `connected_devices` and both processes' CPU time every `every`
    /// in the background.
    pub fn sample_metrics(&self, every: Duration) -> Sampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let http = self.http;
        let pid = self.child.id();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = &mut stopped => return samples,
                    _ = tick.tick() => {
                        if let Ok(text) = get(http, "/metrics").await {
                            let ingested = metric(&text, "yilian_relay_ingested_changes").unwrap_or(0.0) as u64;
                            let connected = metric(&text, "yilian_relay_connected_devices").unwrap_or(0.0) as u64;
                            let relay_cpu = pid.and_then(|p| cpu_seconds_of(&p.to_string()).ok()).unwrap_or(f64::NAN);
                            let load_cpu = cpu_seconds_of("self").unwrap_or(f64::NAN);
                            let store_busy = metric(&text, "yilian_relay_store_busy_seconds").unwrap_or(f64::NAN);
                            let store_wait = metric(&text, "yilian_relay_store_wait_seconds").unwrap_or(f64::NAN);
                            let ingest_groups = metric(&text, "yilian_relay_ingest_groups").unwrap_or(f64::NAN);
                            let ingest_pushes = metric(&text, "yilian_relay_ingest_pushes").unwrap_or(f64::NAN);
                            let ingest_time = yilian_core::IngestTime::KINDS.map(|kind| {
                                metric(&text, &format!("yilian_relay_ingest_seconds_total{{kind=\"{kind}\"}}"))
                                    .unwrap_or(0.0)
                            });
                            samples.push(Sample {
                                at: started.elapsed(),
                                ingested,
                                connected,
                                relay_cpu,
                                load_cpu,
                                store_busy,
                                store_wait,
                                ingest_groups,
                                ingest_pushes,
                                ingest_time,
                            });
                        }
                    }
                }
            }
        });
        Sampler { stop, task }
    }

    fn pid(&self) -> Result<u32> {
        self.child.id().context("the relay has exited")
    }

    /// CPU seconds (user + system) the relay has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(&self.pid()?.to_string())
    }

    /// The relay's peak resident memory (VmHWM), MB.
    pub fn peak_rss_mb(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?))?;
        let kb = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            .context("no VmHWM")?;
        Ok(kb / 1024.0)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL (no chance to flush or close anything), then reaps the process.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGTERM, then waits for the relay to exit.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.is_err() {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// CPU seconds (user + system) process `pid` (a number, or `self`) has used so far.
pub fn cpu_seconds_of(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat: 11 and 12 after the state field.
    Ok((ticks(11) + ticks(12)) / clock_ticks_per_second())
}

/// The kernel's clock ticks per second for /proc times (100 on Linux unless configured).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A plain HTTP/1.1 GET on loopback; returns the whole response.
async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body)).await??;
    Ok(body)
}

/// The value of an unlabelled metric in OpenMetrics text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = rest.strip_prefix(' ').or_else(|| rest.strip_prefix("_total "))?;
        value.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn metrics_are_read_by_exact_name() {
        let text =
            "# TYPE ingested_changes gauge\ningested_changes 1234\nconnected_devices 7\nconnected_devices_max 9\n";
        assert_eq!(metric(text, "ingested_changes"), Some(1234.0));
        assert_eq!(metric(text, "connected_devices"), Some(7.0));
        assert_eq!(metric(text, "sessions"), None);
        let labelled = "ingest_seconds_total{kind=\"applying\"} 2.5\ningest_seconds_total{kind=\"writing\"} 0.5\n";
        assert_eq!(metric(labelled, "ingest_seconds_total{kind=\"writing\"}"), Some(0.5));
    }
}
