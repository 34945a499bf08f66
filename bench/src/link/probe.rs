//! Measures a link as a user would: small UDP probes across it and back, paced below its
//! bandwidth; round-trip time (median, and a low percentile that scheduling noise hardly moves)
//! and the fraction of probes that never came back.

use super::Link;
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// Bytes of a probe's UDP payload (a sequence number and padding).
const PROBE_PAYLOAD: usize = 16;
/// IP + UDP header bytes.
const HEADERS: u64 = 28;

/// What the probes measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeReport {
    /// Probes sent.
    pub sent: u64,
    /// Probes that came back.
    pub returned: u64,
    /// Median round-trip time of the returned ones.
    pub rtt_median: Duration,
    /// 10th percentile of the returned ones' round-trip times. A delay line never delivers early,
    /// and a busy machine only delays: the probes it did not delay show the emulator's own delay,
    /// which a low percentile reads even when most probes waited for a core.
    pub rtt_low: Duration,
    /// Fraction of probes that did not come back (either way lost, or the link down).
    pub round_trip_loss: f64,
}

/// Sends `count` probes across `link` to an echo server behind it, at `per_second`, and waits a
/// few round trips after the last one. Every loop is bounded by `count`.
pub async fn measure(link: &Link, count: u64, per_second: u64) -> Result<ProbeReport> {
    let echo = UdpSocket::bind(SocketAddr::from((link.near(), 0))).await?;
    let echo_port = echo.local_addr()?.port();
    let echo_task = tokio::spawn(async move {
        let mut buffer = [0u8; 64];
        while let Ok((len, from)) = echo.recv_from(&mut buffer).await {
            if echo.send_to(&buffer[..len], from).await.is_err() {
                return;
            }
        }
    });
    let prober = Arc::new(UdpSocket::bind(SocketAddr::from((link.near(), 0))).await?);
    let target = SocketAddr::from((link.far(), echo_port));
    let sent_at: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; count as usize]));
    let gap = Duration::from_secs_f64(1.0 / per_second.max(1) as f64);
    // Stragglers: a full queue and the longest outage drain within this.
    let profile = link.profile();
    let drain = profile.rtt() * 4 + profile.serialization(profile.queue_bytes as u64) * 2 + Duration::from_secs(1);
    let started = Instant::now();
    let deadline = tokio::time::Instant::from(started + gap.mul_f64(count as f64) + drain);
    let receiver = {
        let (prober, sent_at) = (prober.clone(), sent_at.clone());
        tokio::spawn(async move {
            let mut rtts = Vec::new();
            let mut buffer = [0u8; 64];
            while let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, prober.recv_from(&mut buffer)).await {
                if len < 8 {
                    continue;
                }
                let seq = u64::from_be_bytes(buffer[..8].try_into().unwrap_or_default()) as usize;
                let sent = sent_at.lock().ok().and_then(|mut s| s.get_mut(seq).and_then(Option::take));
                if let Some(sent) = sent {
                    rtts.push(sent.elapsed());
                }
            }
            rtts
        })
    };
    for seq in 0..count {
        let due = started + gap.mul_f64(seq as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut probe = [0u8; PROBE_PAYLOAD];
        probe[..8].copy_from_slice(&seq.to_be_bytes());
        if let Ok(mut s) = sent_at.lock() {
            s[seq as usize] = Some(Instant::now());
        }
        prober.send_to(&probe, target).await?;
    }
    let mut rtts = receiver.await?;
    echo_task.abort();
    rtts.sort_unstable();
    let returned = rtts.len() as u64;
    Ok(ProbeReport {
        sent: count,
        returned,
        rtt_median: rtts.get(rtts.len() / 2).copied().unwrap_or_default(),
        rtt_low: rtts.get(rtts.len() / 10).copied().unwrap_or_default(),
        round_trip_loss: 1.0 - returned as f64 / count.max(1) as f64,
    })
}

/// IP bytes of one probe, for pacing below a link's bandwidth.
pub const PROBE_IP_BYTES: u64 = PROBE_PAYLOAD as u64 + HEADERS;
