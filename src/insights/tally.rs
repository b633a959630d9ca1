//! The exact, bounded aggregate of a question: each person's usable interactions, as the cells
//! they fall in, added to the totals with the person's contribution bounded (at most
//! `per_cell` to a cell, at most `cells` cells, chosen at random when they have more). Both
//! sources of people (the population index, and the database when there is none) feed the same
//! tally, person by person.

use std::collections::HashMap;

use super::Bound;

/// A cell's coordinates: per group key, the number of the value (a time bucket, or an interned
/// type, channel or trait value); 0 where the question has no second key.
pub type Cell = [u32; 2];

/// The totals, and the person being added.
pub struct Tally {
    bound: Bound,
    totals: HashMap<Cell, i64>,
    person: Vec<Cell>,
    counted: Vec<(Cell, i64)>,
    random: SplitMix64,
}

impl Tally {
    /// An empty tally under `bound`; `seed` drives the choice of a person's cells when they have
    /// more than the bound.
    pub fn new(bound: Bound, seed: u64) -> Tally {
        Tally {
            bound,
            totals: HashMap::new(),
            person: Vec::new(),
            counted: Vec::new(),
            random: SplitMix64(seed),
        }
    }

    /// One usable interaction of the current person, in `cell`.
    pub fn push(&mut self, cell: Cell) {
        self.person.push(cell);
    }

    /// Adds the current person (what was pushed since the last call), bounded.
    pub fn end_person(&mut self) {
        if self.person.is_empty() {
            return;
        }
        self.person.sort_unstable();
        self.counted.clear();
        for group in self.person.chunk_by(|a, b| a == b) {
            let n = (group.len() as i64).min(i64::from(self.bound.per_cell));
            self.counted.push((group[0], n));
        }
        let keep = self.bound.cells as usize;
        if self.counted.len() > keep {
            // A uniform choice of `keep` cells: the first steps of a Fisher–Yates shuffle.
            for i in 0..keep {
                let j = i + self.random.below((self.counted.len() - i) as u64) as usize;
                self.counted.swap(i, j);
            }
            self.counted.truncate(keep);
        }
        for (cell, n) in &self.counted {
            *self.totals.entry(*cell).or_default() += n;
        }
        self.person.clear();
    }

    /// The totals of the cells someone contributed to.
    pub fn into_totals(self) -> HashMap<Cell, i64> {
        self.totals
    }
}

/// A small, fast generator for the choice of cells (SplitMix64); seeded from the operating
/// system per question, so that nobody can predict which cells of a person are dropped.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform below `n` (> 0), without modulo bias (Lemire's method).
    fn below(&mut self, n: u64) -> u64 {
        loop {
            let product = u128::from(self.next()) * u128::from(n);
            let low = product as u64;
            if low >= n.wrapping_neg() % n {
                return (product >> 64) as u64;
            }
        }
    }
}

/// A seed from the operating system.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the operating system gives random bytes");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_are_clamped_per_cell_and_limited_in_cells() {
        let mut tally = Tally::new(
            Bound {
                cells: 2,
                per_cell: 3,
            },
            7,
        );
        for _ in 0..5 {
            tally.push([0, 0]);
        }
        tally.push([1, 0]);
        tally.end_person();
        for cell in [[0, 0], [1, 0], [2, 0], [3, 0]] {
            tally.push(cell);
        }
        tally.end_person();
        let totals = tally.into_totals();
        // The first person: 3 (clamped) + 1. The second: two of their four cells, one each.
        assert_eq!(totals.values().sum::<i64>(), 3 + 1 + 2);
        assert!(totals[&[0, 0]] >= 3);
    }

    #[test]
    fn the_cells_kept_are_chosen_uniformly() {
        let mut tally = Tally::new(
            Bound {
                cells: 1,
                per_cell: 1,
            },
            42,
        );
        for _ in 0..40_000 {
            for b in 0..4 {
                tally.push([b, 0]);
            }
            tally.end_person();
        }
        let totals = tally.into_totals();
        for b in 0..4 {
            let share = totals[&[b, 0]] as f64 / 40_000.0;
            assert!((share - 0.25).abs() < 0.01, "cell {b}: {share}");
        }
    }
}
