//! A link emulator: real IP packets between two endpoints on this machine cross a userspace
//! delay line with a chosen one-way delay, jitter, seeded random loss, bandwidth cap, queue limit
//! and scripted outages — for UDP (QUIC) and TCP (WebSocket) alike, since it works on packets.
//!
//! How: a TUN device `ylinkN` owns `10.77.N.1/24`. Servers listen on `10.77.N.1` (or any
//! address); clients dial the far address `10.77.N.2`. The kernel routes those packets into the
//! TUN device, where [`Link`] reads them, decides each one's fate with a [`Shaper`] per
//! direction, swaps source and destination addresses (which leaves the IP, UDP and TCP checksums
//! unchanged) and writes the survivors back at their delivery time; the kernel then delivers
//! them locally as if they came from `10.77.N.2`. A flow's direction is set by its first packet:
//! the side that sent it is the client ("up"), the other the server ("down").
//!
//! The kernel here has no `netem`, hence the userspace delay line. Creating a TUN device needs
//! root; run it in a private network namespace ([`netns::enter_private`]) so nothing outside
//! the lab sees it.

pub mod netns;
pub mod probe;
pub mod profile;
pub mod shaper;

pub use profile::{LinkProfile, Outages, PROFILES};
pub use shaper::{Shaper, Verdict};

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use tun_rs::{AsyncDevice, DeviceBuilder};

/// Traffic direction on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Client → server (device → relay).
    Up,
    /// Server → client.
    Down,
}

/// Counters of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WayStats {
    /// Packets that entered the link.
    pub packets: u64,
    /// Their IP bytes (headers included): what the radio was asked to carry.
    pub bytes: u64,
    /// Packets that came out at the far end.
    pub delivered: u64,
    /// Packets lost at random.
    pub lost: u64,
    /// Packets dropped because the bottleneck queue was full.
    pub queue_drops: u64,
    /// Packets dropped because the link was down.
    pub outage_drops: u64,
}

impl std::ops::Sub for WayStats {
    type Output = WayStats;

    fn sub(self, earlier: WayStats) -> WayStats {
        WayStats {
            packets: self.packets - earlier.packets,
            bytes: self.bytes - earlier.bytes,
            delivered: self.delivered - earlier.delivered,
            lost: self.lost - earlier.lost,
            queue_drops: self.queue_drops - earlier.queue_drops,
            outage_drops: self.outage_drops - earlier.outage_drops,
        }
    }
}

/// Counters of a link, both directions; subtract two snapshots for what happened between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkStats {
    /// Client → server.
    pub up: WayStats,
    /// Server → client.
    pub down: WayStats,
}

impl std::ops::Sub for LinkStats {
    type Output = LinkStats;

    fn sub(self, earlier: LinkStats) -> LinkStats {
        LinkStats { up: self.up - earlier.up, down: self.down - earlier.down }
    }
}

#[derive(Default)]
struct WayCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    queue_drops: AtomicU64,
    outage_drops: AtomicU64,
}

impl WayCounters {
    fn snapshot(&self) -> WayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WayStats {
            packets: get(&self.packets),
            bytes: get(&self.bytes),
            delivered: get(&self.delivered),
            lost: get(&self.lost),
            queue_drops: get(&self.queue_drops),
            outage_drops: get(&self.outage_drops),
        }
    }
}

struct Shared {
    profile: LinkProfile,
    started: Instant,
    cut_until: Mutex<Option<Instant>>,
    /// Downward byte count at which an armed cut starts ([`u64::MAX`]: none armed).
    cut_at_down_bytes: AtomicU64,
    /// How long the armed cut lasts.
    armed_outage: Mutex<Duration>,
    up: WayCounters,
    down: WayCounters,
}

impl Shared {
    fn counters(&self, way: Way) -> &WayCounters {
        match way {
            Way::Up => &self.up,
            Way::Down => &self.down,
        }
    }

    fn is_down(&self, now: Instant) -> bool {
        let cut = self.cut_until.lock().map(|until| until.is_some_and(|u| now < u)).unwrap_or(false);
        cut || self.profile.outages.down_at(now.saturating_duration_since(self.started))
    }
}

/// A running emulated link. Dropping it stops the link and removes its TUN device.
pub struct Link {
    index: u8,
    shared: Arc<Shared>,
    reader: tokio::task::JoinHandle<()>,
}

/// Largest packet the TUN device carries (its MTU).
const MTU: u16 = 1500;

/// Flows remembered for their direction before the table is cleared (a bound, not a cache).
const MAX_FLOWS: usize = 65_536;

impl Link {
    /// Starts link number `index` (1..=250, one TUN device `ylink<index>` and subnet
    /// `10.77.<index>.0/24` each) with `profile`; loss and jitter are drawn from `seed`.
    /// Must run inside a tokio runtime; needs root (see [`netns::enter_private`]).
    pub fn start(index: u8, profile: LinkProfile, seed: u64) -> std::io::Result<Link> {
        if !(1..=250).contains(&index) {
            return Err(std::io::Error::other(format!("link index {index} is outside 1..=250")));
        }
        let device = DeviceBuilder::new()
            .name(format!("ylink{index}"))
            .ipv4(Ipv4Addr::new(10, 77, index, 1), 24, None)
            .mtu(MTU)
            .tx_queue_len(4096)
            .build_async()?;
        let device = Arc::new(device);
        let shared = Arc::new(Shared {
            profile: profile.clone(),
            started: Instant::now(),
            cut_until: Mutex::new(None),
            cut_at_down_bytes: AtomicU64::new(u64::MAX),
            armed_outage: Mutex::new(Duration::ZERO),
            up: WayCounters::default(),
            down: WayCounters::default(),
        });
        let up = deliveries(device.clone(), shared.clone(), Way::Up);
        let down = deliveries(device.clone(), shared.clone(), Way::Down);
        let far = Ipv4Addr::new(10, 77, index, 2);
        let reader = tokio::spawn(forward(device, shared.clone(), far, seed, [up, down]));
        Ok(Link { index, shared, reader })
    }

    /// The profile this link applies.
    pub fn profile(&self) -> &LinkProfile {
        &self.shared.profile
    }

    /// Where servers on this link listen (the TUN device's own address).
    pub fn near(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.index, 1)
    }

    /// The address clients dial: packets to it cross the link and arrive from it.
    pub fn far(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.index, 2)
    }

    /// What the link has carried so far.
    pub fn stats(&self) -> LinkStats {
        LinkStats { up: self.shared.up.snapshot(), down: self.shared.down.snapshot() }
    }

    /// Takes the link down now for `outage` (in addition to the profile's scripted outages).
    pub fn cut(&self, outage: Duration) {
        if let Ok(mut until) = self.shared.cut_until.lock() {
            *until = Some(Instant::now() + outage);
        }
    }

    /// Arms a cut: once `bytes` more bytes have entered the link downwards (server to client),
    /// the link goes down for `outage`, from that very packet on (which is dropped).
    pub fn cut_after_down_bytes(&self, bytes: u64, outage: Duration) {
        if let Ok(mut armed) = self.shared.armed_outage.lock() {
            *armed = outage;
        }
        let at = self.shared.down.bytes.load(Ordering::Relaxed).saturating_add(bytes);
        self.shared.cut_at_down_bytes.store(at, Ordering::Relaxed);
    }

    /// Whether an armed cut has fired (or none was armed).
    pub fn armed_cut_fired(&self) -> bool {
        self.shared.cut_at_down_bytes.load(Ordering::Relaxed) == u64::MAX
    }

    /// Whether the link is down right now.
    pub fn is_down(&self) -> bool {
        self.shared.is_down(Instant::now())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // The reader owns the device and the senders of the delivery threads: aborting it closes
        // the device and lets the threads end.
        self.reader.abort();
    }
}

/// Source and destination of an IPv4 packet and its ports (zero for protocols without ports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Addressing {
    protocol: u8,
    source: Ipv4Addr,
    destination: Ipv4Addr,
    source_port: u16,
    destination_port: u16,
}

fn addressing(packet: &[u8]) -> Option<Addressing> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    let protocol = packet[9];
    let ip = |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    let port = |at: usize| packet.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let (source_port, destination_port) =
        if matches!(protocol, 6 | 17) { (port(header), port(header + 2)) } else { (0, 0) };
    Some(Addressing { protocol, source: ip(12), destination: ip(16), source_port, destination_port })
}

/// Swaps the source and destination addresses of an IPv4 packet in place. A ones' complement
/// sum does not depend on the order of its terms, so every checksum stays valid.
fn reflect(packet: &mut [u8]) {
    for i in 0..4 {
        packet.swap(12 + i, 16 + i);
    }
}

/// Remembers which side of each flow spoke first.
#[derive(Default)]
struct Flows {
    initiators: HashMap<(u8, u16, u16), u16>,
}

impl Flows {
    fn way(&mut self, a: &Addressing) -> Way {
        let key = (a.protocol, a.source_port.min(a.destination_port), a.source_port.max(a.destination_port));
        if self.initiators.len() >= MAX_FLOWS && !self.initiators.contains_key(&key) {
            self.initiators.clear();
        }
        let initiator = *self.initiators.entry(key).or_insert(a.source_port);
        if initiator == a.source_port { Way::Up } else { Way::Down }
    }
}

type Delivery = mpsc::Sender<(Instant, Vec<u8>)>;

/// Reads packets off the device and sends each survivor to its direction's delivery thread.
async fn forward(device: Arc<AsyncDevice>, shared: Arc<Shared>, far: Ipv4Addr, seed: u64, lines: [Delivery; 2]) {
    let mut shapers =
        [Shaper::new(shared.profile.clone(), seed), Shaper::new(shared.profile.clone(), seed ^ 0x9e37_79b9_7f4a_7c15)];
    let mut flows = Flows::default();
    let mut buffer = vec![0u8; usize::from(MTU) + 64];
    loop {
        let Ok(len) = device.recv(&mut buffer).await else { return };
        let packet = &buffer[..len];
        let Some(addressing) = addressing(packet) else { continue };
        if addressing.destination != far {
            continue;
        }
        let way = flows.way(&addressing);
        let counters = shared.counters(way);
        counters.packets.fetch_add(1, Ordering::Relaxed);
        let carried = counters.bytes.fetch_add(len as u64, Ordering::Relaxed) + len as u64;
        let now = Instant::now();
        if way == Way::Down && carried >= shared.cut_at_down_bytes.load(Ordering::Relaxed) {
            shared.cut_at_down_bytes.store(u64::MAX, Ordering::Relaxed);
            let outage = shared.armed_outage.lock().map(|d| *d).unwrap_or_default();
            if let Ok(mut until) = shared.cut_until.lock() {
                *until = Some(now + outage);
            }
        }
        if shared.is_down(now) {
            counters.outage_drops.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let index = if way == Way::Up { 0 } else { 1 };
        match shapers[index].admit(now, len) {
            Verdict::Deliver(at) => {
                let mut packet = packet.to_vec();
                reflect(&mut packet);
                if lines[index].send((at, packet)).is_err() {
                    return;
                }
            }
            Verdict::Lost => {
                counters.lost.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::QueueFull => {
                counters.queue_drops.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A thread that writes one direction's packets back into the device at their delivery time
/// (a thread, not a tokio timer: tokio's timer has millisecond granularity, `thread::sleep`
/// tens of microseconds).
fn deliveries(device: Arc<AsyncDevice>, shared: Arc<Shared>, way: Way) -> Delivery {
    let (sender, receiver) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        while let Ok((at, packet)) = receiver.recv() {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            // A TUN write only fails when the kernel is out of buffers; the packet is then lost
            // like any other (counted, and the link goes on). `try_send` needs no runtime.
            match device.try_send(&packet) {
                Ok(_) => shared.counters(way).delivered.fetch_add(1, Ordering::Relaxed),
                Err(_) => shared.counters(way).queue_drops.fetch_add(1, Ordering::Relaxed),
            };
        }
    });
    sender
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_packet(source: [u8; 4], destination: [u8; 4], ports: (u16, u16)) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        p[0] = 0x45;
        p[9] = 17;
        p[12..16].copy_from_slice(&source);
        p[16..20].copy_from_slice(&destination);
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        p
    }

    #[test]
    fn reflecting_swaps_the_addresses_and_keeps_the_ports() {
        let mut p = udp_packet([10, 77, 1, 1], [10, 77, 1, 2], (40000, 4433));
        reflect(&mut p);
        let a = addressing(&p);
        assert_eq!(
            a,
            Some(Addressing {
                protocol: 17,
                source: Ipv4Addr::new(10, 77, 1, 2),
                destination: Ipv4Addr::new(10, 77, 1, 1),
                source_port: 40000,
                destination_port: 4433
            })
        );
        assert_eq!(addressing(&[0x60; 40]), None, "IPv6 is not carried");
        assert_eq!(addressing(&[0x45; 10]), None, "a truncated header is ignored");
    }

    #[test]
    fn the_first_packet_of_a_flow_sets_which_way_is_up() {
        let mut flows = Flows::default();
        let first = addressing(&udp_packet([10, 77, 1, 1], [10, 77, 1, 2], (40000, 4433)));
        let answer = addressing(&udp_packet([10, 77, 1, 1], [10, 77, 1, 2], (4433, 40000)));
        let (Some(first), Some(answer)) = (first, answer) else { panic!("valid packets") };
        assert_eq!((flows.way(&first), flows.way(&answer), flows.way(&first)), (Way::Up, Way::Down, Way::Up));
    }
}
