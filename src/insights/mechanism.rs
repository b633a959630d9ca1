//! The noise, by OpenDP (`opendp` crate): its discrete Laplace mechanism, whose samplers are
//! exact (no floating-point noise), over the bounded aggregate of a question.
//!
//! - Cells whose keys the question fixes (time buckets, or no key at all) are all released,
//!   zeros included: `make_laplace` over the vector of counts, whose L1 sensitivity is the
//!   person's bound `cells × per_cell`. Pure ε-differential privacy.
//! - Keys that come from the data (a type, channel or trait value) are chosen first: their values
//!   are selected when the noisy number of people who have them reaches a threshold
//!   (`select_above_threshold`: `make_laplace_threshold` over the map of counts, with the
//!   person's bound in all three norms), the threshold the least that keeps δ within the
//!   question's share of the day's δ. A value only one person has is selected with probability
//!   below δ. The cells of the selected values are then released as above (the caller splits ε
//!   between the two steps): (ε, δ)-differential privacy in all.
//!
//! Each released value carries its 95 % interval: the value ± the accuracy OpenDP gives for the
//! scale at α = 0.05.

use std::collections::HashMap;

use opendp::accuracy::discrete_laplacian_scale_to_accuracy;
use opendp::domains::{AtomDomain, MapDomain, VectorDomain};
use opendp::measurements::{make_laplace, make_laplace_threshold};
use opendp::measures::{Approximate, MaxDivergence};
use opendp::metrics::{AbsoluteDistance, L0PInfDistance, L1Distance};

use super::Bound;

/// Why noise could not be added (OpenDP refused the parameters: never for a checked question).
#[derive(Debug, thiserror::Error)]
#[error("the mechanism could not be built: {0}")]
pub struct MechanismError(String);

fn opendp_error(error: opendp::error::Error) -> MechanismError {
    MechanismError(format!(
        "{:?}: {}",
        error.variant,
        error.message.unwrap_or_default()
    ))
}

/// A released value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noisy {
    /// The noisy count (never below 0: a count is not negative, and clamping is
    /// post-processing).
    pub value: i64,
    /// Its 95 % interval.
    pub interval: [i64; 2],
}

/// What a release spent and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spent {
    /// ε, as OpenDP's privacy map gives it for the bound.
    pub epsilon: f64,
    /// δ (0 without a threshold).
    pub delta: f64,
    /// The noise scale.
    pub scale: f64,
    /// The threshold a noisy count had to reach to be selected (`None`: no selection).
    pub threshold: Option<i64>,
}

/// The scale that spends at most `epsilon` for the bound: `sensitivity / epsilon`, nudged up
/// until OpenDP's own privacy map agrees (its arithmetic rounds outward).
fn scale_for(
    bound: Bound,
    epsilon: f64,
    spends: impl Fn(f64) -> Result<f64, MechanismError>,
) -> Result<f64, MechanismError> {
    let mut scale = bound.sensitivity() as f64 / epsilon;
    for _ in 0..64 {
        if spends(scale)? <= epsilon {
            return Ok(scale);
        }
        scale *= 1.0 + 1e-9;
    }
    Err(MechanismError("no scale within the budget".into()))
}

/// A noisy count as released: clamped at 0, with its 95 % interval.
fn released(value: i64, scale: f64) -> Result<Noisy, MechanismError> {
    let value = value.max(0);
    let half = discrete_laplacian_scale_to_accuracy(scale, 0.05)
        .map_err(opendp_error)?
        .floor() as i64;
    Ok(Noisy {
        value,
        interval: [(value - half).max(0), value.saturating_add(half)],
    })
}

/// Releases every count of `counts` (in order) with ε = `epsilon` under `bound`.
pub fn release_all(
    counts: &[i64],
    bound: Bound,
    epsilon: f64,
) -> Result<(Vec<Noisy>, Spent), MechanismError> {
    let build = |scale: f64| {
        make_laplace::<_, _, MaxDivergence>(
            VectorDomain::new(AtomDomain::<i64>::default()),
            L1Distance::<i64>::default(),
            scale,
            None,
        )
        .map_err(opendp_error)
    };
    let scale = scale_for(bound, epsilon, |scale| {
        build(scale)?
            .map(&bound.sensitivity())
            .map_err(opendp_error)
    })?;
    let measurement = build(scale)?;
    let spent = measurement
        .map(&bound.sensitivity())
        .map_err(opendp_error)?;
    let noisy = measurement.invoke(&counts.to_vec()).map_err(opendp_error)?;
    let released = noisy
        .into_iter()
        .map(|value| released(value, scale))
        .collect::<Result<_, MechanismError>>()?;
    Ok((
        released,
        Spent {
            epsilon: spent,
            delta: 0.0,
            scale,
            threshold: None,
        },
    ))
}

type Thresholded = opendp::core::Measurement<
    MapDomain<AtomDomain<u32>, AtomDomain<i64>>,
    L0PInfDistance<1, AbsoluteDistance<i64>>,
    Approximate<MaxDivergence>,
    HashMap<u32, i64>,
>;

fn thresholded(scale: f64, threshold: i64) -> Result<Thresholded, MechanismError> {
    make_laplace_threshold::<_, _, Approximate<MaxDivergence>>(
        MapDomain::new(AtomDomain::<u32>::default(), AtomDomain::<i64>::default()),
        L0PInfDistance::<1, _>(AbsoluteDistance::<i64>::default()),
        scale,
        threshold,
        None,
    )
    .map_err(opendp_error)
}

/// The keys of `counts` whose noisy count reaches the least threshold that keeps δ within
/// `delta`, with ε = `epsilon` under `bound` (the noisy counts themselves are not kept: the
/// caller releases the selected keys' cells afresh).
pub fn select_above_threshold(
    counts: &HashMap<u32, i64>,
    bound: Bound,
    epsilon: f64,
    delta: f64,
) -> Result<(Vec<u32>, Spent), MechanismError> {
    let d_in = (bound.cells, bound.sensitivity(), i64::from(bound.per_cell));
    let spends = |scale: f64, threshold: i64| -> Result<(f64, f64), MechanismError> {
        thresholded(scale, threshold)?
            .map(&d_in)
            .map_err(opendp_error)
    };
    // The threshold only moves δ: find the scale for ε at a generous threshold first.
    let generous = i64::MAX / 4;
    let scale = scale_for(bound, epsilon, |scale| Ok(spends(scale, generous)?.0))?;
    // The least threshold whose δ is within `delta` (δ falls as the threshold rises).
    let (mut low, mut high) = (i64::from(bound.per_cell), i64::from(bound.per_cell).max(1));
    while spends(scale, high)?.1 > delta {
        low = high;
        high = high
            .checked_mul(2)
            .ok_or_else(|| MechanismError("no threshold".into()))?;
    }
    while low < high {
        let middle = low + (high - low) / 2;
        if spends(scale, middle).is_ok_and(|(_, d)| d <= delta) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    let measurement = thresholded(scale, high)?;
    let (spent_epsilon, spent_delta) = measurement.map(&d_in).map_err(opendp_error)?;
    let selected = measurement.invoke(counts).map_err(opendp_error)?;
    Ok((
        selected.into_keys().collect(),
        Spent {
            epsilon: spent_epsilon,
            delta: spent_delta,
            scale,
            threshold: Some(high),
        },
    ))
}

#[cfg(test)]
mod tests {
    //! The mechanism as OpenDP draws it, checked against its distribution and against the
    //! membership attack it must resist. OpenDP samples from the operating system's entropy
    //! and takes no seed: the tests use many draws and thresholds whose false alarm rate is
    //! below one in a million instead.

    use super::*;

    const DRAWS: usize = 20_000;

    fn bound(cells: u32) -> Bound {
        Bound { cells, per_cell: 1 }
    }

    /// The discrete Laplace probability of `k` at `scale`.
    fn pmf(k: i64, scale: f64) -> f64 {
        let r = (-1.0 / scale).exp();
        (1.0 - r) / (1.0 + r) * r.powi(k.unsigned_abs() as i32)
    }

    #[test]
    fn the_noise_is_discrete_laplace_of_the_bound_over_epsilon() {
        // Sensitivity 2 at ε = 1: scale 2. A count far from 0, so that clamping never applies.
        let (released, spent) = release_all(&vec![1_000; DRAWS], bound(2), 1.0).unwrap();
        assert!((spent.scale - 2.0).abs() < 1e-6 && spent.epsilon <= 1.0);
        let mut observed = std::collections::BTreeMap::new();
        for noisy in &released {
            *observed
                .entry((noisy.value - 1_000).clamp(-8, 8))
                .or_insert(0usize) += 1;
        }
        // Pearson's χ² over the bins -8 ..= 8 (the ends hold their tails): 16 degrees of
        // freedom, whose 1-in-a-million critical value is about 55.
        let mut chi2 = 0.0;
        for k in -8i64..=8 {
            // An end bin holds its tail: half of what -7 ..= 7 leaves.
            let p = if k.abs() == 8 {
                (1.0 - (-7..=7).map(|j| pmf(j, 2.0)).sum::<f64>()) / 2.0
            } else {
                pmf(k, 2.0)
            };
            let expected = p * DRAWS as f64;
            let seen = *observed.get(&k).unwrap_or(&0) as f64;
            chi2 += (seen - expected).powi(2) / expected;
        }
        assert!(chi2 < 55.0, "χ² = {chi2}: {observed:?}");
        // The intervals cover the truth at least 95 % of the time.
        let covered = released
            .iter()
            .filter(|n| n.interval[0] <= 1_000 && 1_000 <= n.interval[1])
            .count();
        assert!(covered as f64 / DRAWS as f64 >= 0.94, "{covered}");
    }

    #[test]
    fn a_membership_attack_does_no_better_than_epsilon_allows() {
        // The attacker asks many times whether one person is in (101) or out (100) and decides
        // by the answer; for every decision threshold, how often they say "in" when the person
        // is in may exceed how often they say it when out by a factor of e^ε at most.
        let epsilon = 0.5;
        let draws = |count: i64| -> Vec<i64> {
            release_all(&vec![count; DRAWS], bound(1), epsilon)
                .unwrap()
                .0
                .into_iter()
                .map(|n| n.value)
                .collect()
        };
        let (inside, outside) = (draws(101), draws(100));
        for threshold in 96..=105 {
            let rate = |values: &[i64]| {
                values.iter().filter(|v| **v >= threshold).count() as f64 / DRAWS as f64
            };
            let (true_positive, false_positive) = (rate(&inside), rate(&outside));
            // Sampling error of a rate over 20,000 draws is below 0.0036 (one σ): allow five σ.
            assert!(
                true_positive <= epsilon.exp() * false_positive + 5.0 * 0.0036 * 2.0,
                "threshold {threshold}: {true_positive} vs {false_positive}"
            );
        }
        // And the attack is not hopeless either: the mechanism leaks what ε says it may.
        let rate = |values: &[i64]| values.iter().filter(|v| **v >= 101).count() as f64;
        assert!(rate(&inside) > rate(&outside));
    }

    #[test]
    fn a_key_only_one_person_has_is_almost_never_released() {
        let counts: HashMap<u32, i64> = [(0, 1), (1, 500)].into();
        let delta = 1e-9;
        let mut alone = 0;
        for _ in 0..2_000 {
            let (selected, spent) = select_above_threshold(&counts, bound(1), 1.0, delta).unwrap();
            assert!(spent.delta <= delta && spent.epsilon <= 1.0);
            assert!(selected.contains(&1));
            alone += usize::from(selected.contains(&0));
        }
        assert_eq!(alone, 0);
    }
}

#[cfg(test)]
mod extremes {
    use super::*;

    #[test]
    fn the_widest_bound_at_the_least_epsilon_still_releases() {
        // What a checked question may ask at most: 400 cells, 1,000 per cell, ε = 0.001.
        let bound = Bound {
            cells: 400,
            per_cell: 1_000,
        };
        let (all, spent) = release_all(&[5, 0, 7], bound, 0.001).unwrap();
        assert_eq!(all.len(), 3);
        assert!(spent.epsilon <= 0.001);
        let counts: HashMap<u32, i64> = [(0, 10), (1, 1_000_000)].into();
        let (some, spent) = select_above_threshold(&counts, bound, 0.001, 1e-12).unwrap();
        assert!(spent.delta <= 1e-12 && spent.threshold.unwrap() > 1_000_000);
        assert!(some.len() <= 2);
    }
}
