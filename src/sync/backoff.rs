//! Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS architecture
//! blog): the n-th retry waits a uniform random time in `[0, min(cap, base · 2ⁿ)]`, so that
//! many clients that failed together do not retry together. The random source is injected.

use super::Millis;

/// A source of uniform random numbers in `[0, 1)`.
pub trait Random {
    fn unit(&mut self) -> f64;
}

/// SplitMix64: tiny, seedable, good enough for jitter (and replayable in simulations).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Random for SplitMix64 {
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    base: Millis,
    cap: Millis,
    attempt: u32,
}

/// First retry window: up to 0.5 s.
pub const BASE: Millis = 500;
/// Longest wait between two attempts.
pub const CAP: Millis = 30_000;

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BASE, CAP)
    }
}

impl Backoff {
    pub fn new(base: Millis, cap: Millis) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The window of the next retry, `min(cap, base · 2^attempt)`.
    pub fn window(&self) -> Millis {
        let factor = 1u64 << self.attempt.min(32);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt; `retry_after` (a server's `Retry-After`) is a floor.
    pub fn next_delay(&mut self, rng: &mut dyn Random, retry_after: Option<Millis>) -> Millis {
        let jitter = (self.window() as f64 * rng.unit()) as Millis;
        self.attempt = self.attempt.saturating_add(1);
        jitter.max(retry_after.unwrap_or(0))
    }

    /// After a success: the next failure starts from the smallest window again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(f64);
    impl Random for Fixed {
        fn unit(&mut self) -> f64 {
            self.0
        }
    }

    #[test]
    fn windows_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let mut top = Fixed(0.999_999);
        let got: Vec<Millis> = (0..9).map(|_| b.next_delay(&mut top, None)).collect();
        assert_eq!(
            got,
            [499, 999, 1999, 3999, 7999, 15_999, 29_999, 29_999, 29_999]
        );
        b.reset();
        assert_eq!(b.next_delay(&mut Fixed(0.5), None), 250);
    }

    #[test]
    fn full_jitter_spans_zero_to_the_window() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(&mut Fixed(0.0), None), 0);
        let mut rng = SplitMix64(7);
        let mut b = Backoff::default();
        for _ in 0..5 {
            b.next_delay(&mut rng, None);
        }
        // Window 16 s: draws spread over it.
        let draws: Vec<Millis> = (0..200)
            .map(|_| b.clone().next_delay(&mut rng, None))
            .collect();
        assert!(draws.iter().all(|d| *d < 16_000));
        assert!(draws.iter().any(|d| *d < 4_000) && draws.iter().any(|d| *d > 12_000));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(&mut Fixed(0.1), Some(5_000)), 5_000);
        assert_eq!(b.next_delay(&mut Fixed(0.5), Some(10)), 500);
    }

    #[test]
    fn splitmix_is_replayable() {
        let a: Vec<u64> = (0..3)
            .map({
                let mut r = SplitMix64(1);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..3)
            .map({
                let mut r = SplitMix64(1);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut r = SplitMix64(3);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&r.unit())));
    }
}
