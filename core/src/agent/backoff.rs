//! Retry delays while the relay is unreachable: exponential, capped, with full jitter so that a
//! village's phones coming back from the same outage do not all knock at once.

use rand::Rng;
use std::time::Duration;

/// Exponential backoff with jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max: max.max(min), failures: 0 }
    }

    /// Forget failures (a sync worked, or the network just came back).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns the delay before the next attempt: uniformly random in
    /// `[ceiling / 2, ceiling]` where the ceiling doubles with each failure up to `max`.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.min.saturating_mul(1u32 << exp).min(self.max);
        let floor = ceiling / 2;
        floor + ceiling.saturating_sub(floor).mul_f64(rng.r#gen::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<Duration> = (0..10).map(|_| backoff.next_delay(&mut rng)).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_secs(1 << i.min(20)).min(Duration::from_secs(60));
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {i}: {d:?} not in [{:?}, {ceiling:?}]", ceiling / 2);
        }
        assert!(delays[9] >= Duration::from_secs(30));
        // Two phones with different randomness do not retry in lockstep.
        let mut other = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng2 = rand::rngs::StdRng::seed_from_u64(8);
        let theirs: Vec<Duration> = (0..10).map(|_| other.next_delay(&mut rng2)).collect();
        assert_ne!(delays, theirs);
        backoff.reset();
        assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(1));
    }
}
