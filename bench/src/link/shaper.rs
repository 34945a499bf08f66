//! The delay line of one direction, sans IO: given a packet's arrival time and size it decides
//! whether the packet is dropped (queue full, lost) or when it comes out at the far end.
//!
//! The model is a bottleneck with a FIFO queue of `queue_bytes` drained at `bandwidth_bps`,
//! followed by a propagation delay with jitter; a packet is lost with probability `loss` after it
//! used its air time (a corrupted frame still occupied the radio). Deliveries never overtake
//! each other.
//!
//! Jitter is a delay offset redrawn every [`JITTER_PERIOD`], not per packet: independent draws
//! per packet, with no reordering allowed, would hold most packets behind the slowest of their
//! neighbours and shift the median delay up by nearly the whole jitter (netem's known bias).

use super::profile::LinkProfile;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// What happens to one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Comes out at the far end at this instant.
    Deliver(Instant),
    /// Lost on the link (random loss).
    Lost,
    /// Dropped on arrival: the bottleneck queue is full.
    QueueFull,
}

/// One direction's bottleneck, queue and delay.
#[derive(Debug)]
pub struct Shaper {
    profile: LinkProfile,
    /// When the bottleneck finishes sending what is queued.
    busy_until: Option<Instant>,
    /// When the previous packet comes out (deliveries keep their order).
    last_delivery: Option<Instant>,
    /// The current jitter offset (seconds, either sign) and until when it holds.
    jitter: (f64, Option<Instant>),
    /// Draws which packets are lost: one draw per packet admitted to the queue, so the n-th
    /// packet's fate follows from the seed alone.
    loss_rng: StdRng,
    /// Draws the jitter offsets. Apart from `loss_rng`: jitter is redrawn by the clock, and on a
    /// shared stream a busy machine's timing shifted which draw each packet's loss got (the 2G
    /// probes' loss then varied with the machine's load, measured 5.4-7.1% for 5.9%).
    jitter_rng: StdRng,
}

/// Mixed into the seed for the jitter stream.
const JITTER_STREAM: u64 = 0x6a09_e667_f3bc_c908;

/// How long one jitter offset lasts (a radio's scheduling changes on this order of time).
pub const JITTER_PERIOD: Duration = Duration::from_millis(50);

impl Shaper {
    /// A shaper for `profile`, its loss and jitter drawn from `seed`.
    pub fn new(profile: LinkProfile, seed: u64) -> Shaper {
        Shaper {
            profile,
            busy_until: None,
            last_delivery: None,
            jitter: (0.0, None),
            loss_rng: StdRng::seed_from_u64(seed),
            jitter_rng: StdRng::seed_from_u64(seed ^ JITTER_STREAM),
        }
    }

    /// Bytes waiting in the queue at `now`.
    pub fn queued_bytes(&self, now: Instant) -> u64 {
        let backlog = self.busy_until.map_or(Duration::ZERO, |busy| busy.saturating_duration_since(now));
        (backlog.as_secs_f64() * self.profile.bandwidth_bps as f64 / 8.0) as u64
    }

    /// Decides the fate of a packet of `len` bytes arriving at `now`.
    pub fn admit(&mut self, now: Instant, len: usize) -> Verdict {
        if self.profile.bandwidth_bps > 0 && self.queued_bytes(now) + len as u64 > self.profile.queue_bytes as u64 {
            return Verdict::QueueFull;
        }
        let start = self.busy_until.map_or(now, |busy| busy.max(now));
        let sent = start + self.profile.serialization(len as u64);
        self.busy_until = Some(sent);
        if self.profile.loss > 0.0 && self.loss_rng.gen_bool(self.profile.loss.min(1.0)) {
            return Verdict::Lost;
        }
        let mut delay = self.profile.one_way_delay;
        if !self.profile.jitter.is_zero() {
            if self.jitter.1.is_none_or(|until| now >= until) {
                let spread = self.profile.jitter.as_secs_f64();
                self.jitter = (self.jitter_rng.gen_range(-spread..=spread), Some(now + JITTER_PERIOD));
            }
            delay = Duration::from_secs_f64((delay.as_secs_f64() + self.jitter.0).max(0.0));
        }
        let at = (sent + delay).max(self.last_delivery.unwrap_or(sent));
        self.last_delivery = Some(at);
        Verdict::Deliver(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::profile::Outages;

    fn profile(bandwidth_bps: u64, loss: f64, queue_bytes: usize) -> LinkProfile {
        LinkProfile {
            name: "test".into(),
            one_way_delay: Duration::from_millis(100),
            jitter: Duration::ZERO,
            loss,
            bandwidth_bps,
            queue_bytes,
            outages: Outages::Never,
        }
    }

    #[test]
    fn a_packet_on_an_idle_link_takes_its_air_time_plus_the_delay() {
        let mut shaper = Shaper::new(profile(80_000, 0.0, 100_000), 1);
        let t0 = Instant::now();
        // 1,000 bytes at 80 kbit/s: 100 ms on the air, then 100 ms of propagation.
        assert_eq!(shaper.admit(t0, 1000), Verdict::Deliver(t0 + Duration::from_millis(200)));
    }

    #[test]
    fn back_to_back_packets_queue_behind_each_other_and_the_queue_overflows() {
        let mut shaper = Shaper::new(profile(80_000, 0.0, 2_500), 1);
        let t0 = Instant::now();
        let at: Vec<Verdict> = (0..4).map(|_| shaper.admit(t0, 1000)).collect();
        let ms = |n| Verdict::Deliver(t0 + Duration::from_millis(n));
        // Two fit in the 2,500-byte queue behind nothing; the third would make 3,000 queued bytes.
        assert_eq!(at, vec![ms(200), ms(300), Verdict::QueueFull, Verdict::QueueFull]);
        assert_eq!(shaper.queued_bytes(t0), 2000);
        // Once the first has left, one more fits.
        assert_eq!(shaper.admit(t0 + Duration::from_millis(100), 1000), ms(400));
    }

    #[test]
    fn loss_follows_the_seed_and_the_rate() {
        let fates = |seed| {
            let mut shaper = Shaper::new(profile(0, 0.03, 0), seed);
            let t0 = Instant::now();
            (0..100_000).map(|_| shaper.admit(t0, 100) == Verdict::Lost).collect::<Vec<bool>>()
        };
        let (a, b, c) = (fates(7), fates(7), fates(8));
        assert_eq!(a, b, "same seed, same losses");
        assert_ne!(a, c);
        let rate = a.iter().filter(|lost| **lost).count() as f64 / a.len() as f64;
        assert!((rate - 0.03).abs() < 0.003, "loss rate {rate}");
    }

    #[test]
    fn which_packets_are_lost_follows_from_the_seed_whatever_their_timing() {
        let lost = |spacing: Duration| {
            let mut shaper = Shaper::new(
                LinkProfile { jitter: Duration::from_millis(20), ..profile(10_000_000, 0.03, 1 << 20) },
                11,
            );
            let t0 = Instant::now();
            (0..5_000u32).filter(|n| shaper.admit(t0 + spacing * *n, 100) == Verdict::Lost).collect::<Vec<u32>>()
        };
        // Packets 1 ms apart see a new jitter offset every 50th packet, 30 ms apart every second.
        assert_eq!(lost(Duration::from_millis(1)), lost(Duration::from_millis(30)));
    }

    #[test]
    fn jitter_leaves_the_median_delay_where_the_profile_puts_it() {
        let mut shaper =
            Shaper::new(LinkProfile { jitter: Duration::from_millis(20), ..profile(10_000_000, 0.0, 1 << 20) }, 5);
        let t0 = Instant::now();
        // 2,000 jitter draws: their median has a standard error of 0.45 ms.
        let mut delays: Vec<Duration> = (0..100_000u64)
            .filter_map(|n| {
                let arrival = t0 + Duration::from_millis(n);
                match shaper.admit(arrival, 100) {
                    Verdict::Deliver(at) => Some(at - arrival),
                    _ => None,
                }
            })
            .collect();
        delays.sort_unstable();
        let median = delays[delays.len() / 2].as_secs_f64() * 1000.0;
        assert!((median - 100.0).abs() < 2.0, "median one-way delay {median} ms");
        assert!(delays[0] >= Duration::from_millis(80) && delays[delays.len() - 1] <= Duration::from_millis(121));
    }

    #[test]
    fn jitter_never_reorders_packets() {
        let mut shaper =
            Shaper::new(LinkProfile { jitter: Duration::from_millis(50), ..profile(10_000_000, 0.0, 1 << 20) }, 3);
        let t0 = Instant::now();
        let mut last = t0;
        for n in 0..1000 {
            let Verdict::Deliver(at) = shaper.admit(t0 + Duration::from_micros(n * 100), 200) else {
                panic!("no loss configured");
            };
            assert!(at >= last && at >= t0 + Duration::from_millis(50));
            last = at;
        }
    }
}
