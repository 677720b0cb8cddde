//! Crash-restart delays: exponential, capped, with ±20% jitter.

use std::time::Duration;

use rand::Rng;

/// The delay before restart number `attempt + 1` of a crash streak (`attempt` 0 → `base`).
/// `jitter` is a factor in [-0.2, 0.2].
pub(crate) fn delay(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let factor = 2f64.powi(attempt.min(30) as i32);
    let raw = base.as_secs_f64() * factor * (1.0 + jitter.clamp(-0.2, 0.2));
    Duration::from_secs_f64(raw.min(max.as_secs_f64()).max(0.0))
}

pub(crate) fn jittered(base: Duration, max: Duration, attempt: u32) -> Duration {
    delay(base, max, attempt, rand::thread_rng().gen_range(-0.2..=0.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_per_attempt() {
        assert_eq!(delay(S, 60 * S, 0, 0.0), S);
        assert_eq!(delay(S, 60 * S, 1, 0.0), 2 * S);
        assert_eq!(delay(S, 60 * S, 3, 0.0), 8 * S);
    }

    #[test]
    fn is_capped_even_with_jitter() {
        assert_eq!(delay(S, 60 * S, 10, 0.2), 60 * S);
        assert_eq!(delay(S, 60 * S, u32::MAX, 0.0), 60 * S);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        for _ in 0..1000 {
            let d = jittered(S, 60 * S, 2);
            assert!(d >= Duration::from_millis(3200) && d <= Duration::from_millis(4800));
        }
    }
}
