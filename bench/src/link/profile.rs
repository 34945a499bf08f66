//! Link profiles: what a rural clinic's connection looks like, as numbers the emulator applies.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Link outages: the link carries nothing while down (both directions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outages {
    /// Never down (outages may still be cut by hand, [`super::Link::cut`]).
    Never,
    /// Down for `down` at the end of every `every` (the first outage starts at `every - down`).
    Every {
        /// Period of the cycle.
        every: Duration,
        /// How long the link is down in each cycle.
        down: Duration,
    },
}

impl Outages {
    /// Whether the link is down `since_start` after it came up.
    pub fn down_at(&self, since_start: Duration) -> bool {
        match self {
            Outages::Never => false,
            Outages::Every { every, down } => {
                let period = every.as_nanos().max(1);
                let phase = since_start.as_nanos() % period;
                phase >= period.saturating_sub(down.as_nanos())
            }
        }
    }
}

/// One emulated link, symmetric in both directions.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkProfile {
    /// Profile name (`lan`, `4g`, `2g`, `satellite-bad`, `flapping`).
    pub name: String,
    /// One-way propagation delay (half the round-trip time of an empty link).
    pub one_way_delay: Duration,
    /// Each packet's delay varies uniformly by up to this much either way (packets are never
    /// reordered: a packet leaves no earlier than the one before it).
    pub jitter: Duration,
    /// Probability that a packet is lost, each direction, drawn from the link's seeded generator.
    pub loss: f64,
    /// Bandwidth each way in bits per second (0 = unlimited).
    pub bandwidth_bps: u64,
    /// Bytes the bottleneck queue holds before it drops arriving packets (tail drop).
    pub queue_bytes: usize,
    /// Scripted outages.
    pub outages: Outages,
}

/// Names of the built-in profiles, in the order the benchmarks run them.
pub const PROFILES: [&str; 5] = ["lan", "4g", "2g", "satellite-bad", "flapping"];

impl LinkProfile {
    /// A link on the clinic's own network: 1 ms RTT, 100 Mbit/s, no loss.
    pub fn lan() -> LinkProfile {
        LinkProfile {
            name: "lan".into(),
            one_way_delay: Duration::from_micros(500),
            jitter: Duration::ZERO,
            loss: 0.0,
            bandwidth_bps: 100_000_000,
            queue_bytes: 1 << 20,
            outages: Outages::Never,
        }
    }

    /// A township 4G link: 60 ms RTT, 1% loss, 10 Mbit/s.
    pub fn four_g() -> LinkProfile {
        LinkProfile {
            name: "4g".into(),
            one_way_delay: Duration::from_millis(30),
            jitter: Duration::from_millis(3),
            loss: 0.01,
            bandwidth_bps: 10_000_000,
            queue_bytes: 256 * 1024,
            outages: Outages::Never,
        }
    }

    /// A village 2G (EDGE) link: 400 ms RTT, 3% loss, 64 kbit/s.
    pub fn two_g() -> LinkProfile {
        LinkProfile {
            name: "2g".into(),
            one_way_delay: Duration::from_millis(200),
            jitter: Duration::from_millis(20),
            loss: 0.03,
            bandwidth_bps: 64_000,
            queue_bytes: 32 * 1024,
            outages: Outages::Never,
        }
    }

    /// A poor satellite backhaul: 700 ms RTT, 10% loss, 256 kbit/s.
    pub fn satellite_bad() -> LinkProfile {
        LinkProfile {
            name: "satellite-bad".into(),
            one_way_delay: Duration::from_millis(350),
            jitter: Duration::from_millis(20),
            loss: 0.10,
            bandwidth_bps: 256_000,
            queue_bytes: 64 * 1024,
            outages: Outages::Never,
        }
    }

    /// 2G that drops out for 5 s every 20 s (a doctor walking between houses).
    pub fn flapping() -> LinkProfile {
        LinkProfile {
            name: "flapping".into(),
            outages: Outages::Every { every: Duration::from_secs(20), down: Duration::from_secs(5) },
            ..LinkProfile::two_g()
        }
    }

    /// Round-trip time of an empty link (no queueing, no serialization).
    pub fn rtt(&self) -> Duration {
        self.one_way_delay * 2
    }

    /// Probability that a request and its answer both cross.
    pub fn round_trip_delivery(&self) -> f64 {
        (1.0 - self.loss) * (1.0 - self.loss)
    }

    /// Time to put `bytes` on the wire at the link's bandwidth (zero when unlimited).
    pub fn serialization(&self, bytes: u64) -> Duration {
        if self.bandwidth_bps == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(bytes as f64 * 8.0 / self.bandwidth_bps as f64)
    }

    /// Fraction of time the link is up (scripted outages only).
    pub fn availability(&self) -> f64 {
        match self.outages {
            Outages::Never => 1.0,
            Outages::Every { every, down } => 1.0 - down.as_secs_f64() / every.as_secs_f64().max(f64::EPSILON),
        }
    }
}

/// An unknown profile name.
#[derive(Debug, thiserror::Error)]
#[error("unknown link profile {0:?} (known: lan, 4g, 2g, satellite-bad, flapping)")]
pub struct UnknownProfile(pub String);

impl FromStr for LinkProfile {
    type Err = UnknownProfile;

    fn from_str(name: &str) -> Result<LinkProfile, UnknownProfile> {
        match name {
            "lan" => Ok(LinkProfile::lan()),
            "4g" => Ok(LinkProfile::four_g()),
            "2g" => Ok(LinkProfile::two_g()),
            "satellite-bad" => Ok(LinkProfile::satellite_bad()),
            "flapping" => Ok(LinkProfile::flapping()),
            other => Err(UnknownProfile(other.into())),
        }
    }
}

impl fmt::Display for LinkProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ms RTT ±{} ms, {:.1}% loss, {} kbit/s, queue {} KB",
            self.name,
            self.rtt().as_secs_f64() * 1000.0,
            self.jitter.as_millis(),
            self.loss * 100.0,
            self.bandwidth_bps / 1000,
            self.queue_bytes / 1024
        )?;
        if let Outages::Every { every, down } = self.outages {
            write!(f, ", down {} s every {} s", down.as_secs(), every.as_secs())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_profile_parses_and_has_the_issue_numbers() {
        for name in PROFILES {
            assert_eq!(name.parse::<LinkProfile>().map(|p| p.name).ok().as_deref(), Some(name));
        }
        let two_g = LinkProfile::two_g();
        assert_eq!((two_g.rtt(), two_g.loss, two_g.bandwidth_bps), (Duration::from_millis(400), 0.03, 64_000));
        assert!("3g".parse::<LinkProfile>().is_err_and(|e| e.to_string().contains("\"3g\"")));
    }

    #[test]
    fn flapping_is_down_five_seconds_of_every_twenty() {
        let flapping = LinkProfile::flapping();
        let down = |s: f64| flapping.outages.down_at(Duration::from_secs_f64(s));
        assert!(!down(0.0) && !down(14.9) && down(15.0) && down(19.9) && !down(20.0) && down(35.5));
        assert!((flapping.availability() - 0.75).abs() < 1e-9);
    }
}
