//! What the benchmarks share.

use std::time::Duration;

/// The `p`th percentile of the samples (nearest rank), sorting them.
pub(crate) fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
