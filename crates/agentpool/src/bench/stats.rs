//! Latency statistics over timed samples.

use std::time::Duration;

/// Nearest-rank percentile of sorted samples: the smallest sample such that at least
/// `p` percent of all samples are at or below it. `None` when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    // Multiplying before dividing keeps whole-number ranks exact (7 * 100 / 100, not 0.07 * 100).
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[rank.saturating_sub(1).min(last)])
}

/// The figures reported for a series of timed requests.
pub struct Summary {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            p50: percentile(&samples, 50.0)?,
            p99: percentile(&samples, 99.0)?,
            max: *samples.last()?,
        })
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(range: std::ops::RangeInclusive<u64>) -> Vec<Duration> {
        range.map(Duration::from_millis).collect()
    }

    #[test]
    fn nearest_rank() {
        let hundred = millis(1..=100);
        assert_eq!(percentile(&hundred, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&hundred, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&hundred, 7.0), Some(Duration::from_millis(7)));
        assert_eq!(
            percentile(&hundred, 100.0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(percentile(&hundred, 0.0), Some(Duration::from_millis(1)));
        // With 10 samples p99 is the largest: ceil(9.9) = 10.
        assert_eq!(
            percentile(&millis(1..=10), 99.0),
            Some(Duration::from_millis(10))
        );
        assert_eq!(
            percentile(&millis(5..=5), 50.0),
            Some(Duration::from_millis(5))
        );
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_sorts_first() {
        let s = Summary::of(millis(1..=4).into_iter().rev().collect()).unwrap();
        assert_eq!((ms(s.p50), ms(s.p99), ms(s.max)), (2.0, 4.0, 4.0));
        assert!(Summary::of(Vec::new()).is_none());
    }
}
