//! Fast log-likelihoods for the fits, over distinct rows grouped by their parts.
//!
//! Most of a likelihood's terms depend on only one or two of a row's statistics:
//! log-gamma terms on frequency, logarithms on t or recency, Pareto/NBD's 2F1 terms
//! on (frequency, t) and (frequency, recency). Each evaluation computes those terms
//! once per distinct value and then combines them per row, and large inputs are
//! split across two threads. The results equal the per-customer formulas of
//! [`super::models`] up to rounding.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::models::Customer;
use super::special::{digamma, ln_add_exp, ln_gamma, ln_hyp2f1, ln_sub_exp};

/// Rows above which an evaluation uses two threads.
const PARALLEL_ROWS: usize = 20_000;

/// A multiplicative hash for row keys: the keys are float bits chosen by the data,
/// not by an attacker, and SipHash dominated the accumulator's time.
#[derive(Debug, Default)]
pub struct RowHasher(u64);

impl Hasher for RowHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Distinct values of one statistic and, per row, the index of its value.
#[derive(Debug, Default)]
struct Distinct {
    values: Vec<f64>,
    index: HashMap<u64, u32, BuildHasherDefault<RowHasher>>,
}

impl Distinct {
    fn id(&mut self, value: f64) -> u32 {
        let values = &mut self.values;
        *self.index.entry(value.to_bits()).or_insert_with(|| {
            values.push(value);
            (values.len() - 1) as u32
        })
    }
}

/// Rows as indices into the distinct frequencies, recencies and t values.
#[derive(Debug)]
pub struct GroupedRows {
    frequencies: Vec<f64>,
    recencies: Vec<f64>,
    ts: Vec<f64>,
    rows: Vec<Row>,
    total_weight: f64,
    /// Distinct (frequency, time) pairs, built on first use by Pareto/NBD.
    pairs: OnceLock<Pairs>,
}

/// The distinct (frequency, time) pairs of the rows, where time is recency or t,
/// and for each row the index of its (frequency, recency) and (frequency, t) pair.
#[derive(Debug)]
struct Pairs {
    /// Frequency index and time value of each pair.
    values: Vec<(u32, f64)>,
    /// Per row, the indices of its (frequency, recency) and (frequency, t) pairs.
    rows: Vec<[u32; 2]>,
}

impl Pairs {
    fn new(grouped: &GroupedRows) -> Self {
        let mut index: HashMap<(u32, u64), u32, BuildHasherDefault<RowHasher>> =
            HashMap::default();
        let mut values = Vec::new();
        let mut id = |x: u32, time: f64| {
            *index.entry((x, time.to_bits())).or_insert_with(|| {
                values.push((x, time));
                (values.len() - 1) as u32
            })
        };
        let rows = grouped
            .rows
            .iter()
            .map(|row| {
                [
                    id(row.x, grouped.recencies[row.recency as usize]),
                    id(row.x, grouped.ts[row.t as usize]),
                ]
            })
            .collect();
        Self { values, rows }
    }
}

#[derive(Debug, Clone, Copy)]
struct Row {
    x: u32,
    recency: u32,
    t: u32,
    weight: f64,
}

impl GroupedRows {
    /// Groups valid customers with their weights.
    pub fn new(customers: &[(Customer, f64)]) -> Self {
        let (mut xs, mut recencies, mut ts) = (
            Distinct::default(),
            Distinct::default(),
            Distinct::default(),
        );
        let rows = customers
            .iter()
            .map(|(c, weight)| Row {
                x: xs.id(c.frequency),
                recency: recencies.id(c.recency),
                t: ts.id(c.t),
                weight: *weight,
            })
            .collect();
        Self {
            frequencies: xs.values,
            recencies: recencies.values,
            ts: ts.values,
            rows,
            total_weight: customers.iter().map(|c| c.1).sum(),
            pairs: OnceLock::new(),
        }
    }

    fn pairs(&self) -> &Pairs {
        self.pairs.get_or_init(|| Pairs::new(self))
    }

    /// Sums `per_row` over the rows, with each row's index, on two threads for
    /// large inputs.
    fn sum_rows<const N: usize>(
        &self,
        per_row: impl Fn(usize, &Row) -> [f64; N] + Sync,
    ) -> [f64; N] {
        weighted_sums(&self.rows, |row| row.weight, per_row)
    }
}

/// Returns the sums over `rows` of `per_row` (given each row's index) times the
/// row's weight, on two threads when there are many rows.
fn weighted_sums<R: Sync, const N: usize>(
    rows: &[R],
    weight: impl Fn(&R) -> f64 + Sync,
    per_row: impl Fn(usize, &R) -> [f64; N] + Sync,
) -> [f64; N] {
    let sum_chunk = |offset: usize, chunk: &[R]| {
        let mut sum = [0.0; N];
        for (i, row) in chunk.iter().enumerate() {
            let values = per_row(offset + i, row);
            let w = weight(row);
            for (total, value) in sum.iter_mut().zip(values) {
                *total += w * value;
            }
        }
        sum
    };
    if rows.len() < PARALLEL_ROWS {
        return sum_chunk(0, rows);
    }
    let middle = rows.len() / 2;
    let (left, right) = rows.split_at(middle);
    let (a, b) = std::thread::scope(|scope| {
        let handle = scope.spawn(|| sum_chunk(middle, right));
        let a = sum_chunk(0, left);
        (a, handle.join().unwrap_or([f64::NAN; N]))
    });
    let mut sum = a;
    for (total, value) in sum.iter_mut().zip(b) {
        *total += value;
    }
    sum
}

/// Returns the BG/NBD mean negative log-likelihood per customer and its gradient
/// with respect to the logarithms of (r, alpha, a, b).
pub fn bgnbd(rows: &GroupedRows, theta: &[f64]) -> (f64, Vec<f64>) {
    let (r, alpha, a, b) = (
        theta[0].exp(),
        theta[1].exp(),
        theta[2].exp(),
        theta[3].exp(),
    );
    if ![r, alpha, a, b].iter().all(|p| p.is_finite() && *p > 0.0) {
        return (f64::INFINITY, vec![0.0; 4]);
    }
    let ln_alpha = alpha.ln();
    // Terms that depend on the frequency only.
    struct ByFrequency {
        common: f64,
        d_common: [f64; 3],
        ln_dropout: f64,
        inv_b: f64,
    }
    let (psi_r, psi_b, psi_ab) = (digamma(r), digamma(b), digamma(a + b));
    let base = -ln_gamma(r) + ln_gamma(a + b) - ln_gamma(b) + r * ln_alpha;
    let by_x: Vec<ByFrequency> = rows
        .frequencies
        .iter()
        .map(|&x| ByFrequency {
            common: base + ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x),
            d_common: [
                digamma(r + x) - psi_r + ln_alpha,
                psi_ab - digamma(a + b + x),
                psi_ab + digamma(b + x) - psi_b - digamma(a + b + x),
            ],
            ln_dropout: if x > 0.0 {
                a.ln() - (b + x - 1.0).ln()
            } else {
                f64::NEG_INFINITY
            },
            inv_b: if x > 0.0 { 1.0 / (b + x - 1.0) } else { 0.0 },
        })
        .collect();
    let logs = |values: &[f64]| -> Vec<(f64, f64)> {
        values
            .iter()
            .map(|v| ((alpha + v).ln(), 1.0 / (alpha + v)))
            .collect()
    };
    let (by_t, by_recency) = (logs(&rows.ts), logs(&rows.recencies));

    let sums = rows.sum_rows(|_, row| {
        let x = rows.frequencies[row.x as usize];
        let f = &by_x[row.x as usize];
        let (ln_t, inv_t) = by_t[row.t as usize];
        let (ln_recency, inv_recency) = by_recency[row.recency as usize];
        let alive = -(r + x) * ln_t;
        let dropped = f.ln_dropout - (r + x) * ln_recency;
        // ln(e^alive + e^dropped) and the share of each case, from one exponential.
        let (total, p_alive) = if dropped == f64::NEG_INFINITY {
            (alive, 1.0)
        } else {
            let e = (-(alive - dropped).abs()).exp();
            let total = alive.max(dropped) + e.ln_1p();
            let p_alive = if alive >= dropped {
                1.0 / (1.0 + e)
            } else {
                e / (1.0 + e)
            };
            (total, p_alive)
        };
        let p_dropped = 1.0 - p_alive;
        let d_r = f.d_common[0] - p_alive * ln_t - p_dropped * ln_recency;
        let d_alpha = r / alpha - (r + x) * (p_alive * inv_t + p_dropped * inv_recency);
        let d_a = f.d_common[1] + p_dropped / a;
        let d_b = f.d_common[2] - p_dropped * f.inv_b;
        [f.common + total, d_r, d_alpha, d_a, d_b]
    });
    let n = rows.total_weight;
    let gradient = vec![
        -sums[1] * r / n,
        -sums[2] * alpha / n,
        -sums[3] * a / n,
        -sums[4] * b / n,
    ];
    let value = -sums[0] / n;
    if value.is_finite() && gradient.iter().all(|g| g.is_finite()) {
        (value, gradient)
    } else {
        (f64::INFINITY, vec![0.0; 4])
    }
}

/// Returns the Pareto/NBD mean negative log-likelihood per customer at the
/// logarithms of (r, alpha, s, beta).
pub fn pareto_nbd(rows: &GroupedRows, theta: &[f64]) -> f64 {
    let (r, alpha, s, beta) = (
        theta[0].exp(),
        theta[1].exp(),
        theta[2].exp(),
        theta[3].exp(),
    );
    if ![r, alpha, s, beta]
        .iter()
        .all(|p| p.is_finite() && *p > 0.0)
    {
        return f64::INFINITY;
    }
    // ln F(x, y) of the A0 term for every (frequency, time) pair the rows use.
    let ln_f = |x: f64, y: f64| -> f64 {
        let total = r + s + x;
        let (base, b_param) = if alpha >= beta {
            (alpha + y, s + 1.0)
        } else {
            (beta + y, r + x)
        };
        let z = (alpha - beta).abs() / base;
        match ln_hyp2f1(total, b_param, total + 1.0, z) {
            Ok(hyp) if hyp.sign > 0.0 => hyp.ln_abs - total * base.ln(),
            _ => f64::NAN,
        }
    };
    let pairs = rows.pairs();
    let ln_pair = |&(x, time): &(u32, f64)| ln_f(rows.frequencies[x as usize], time);
    let ln_fs: Vec<f64> = if pairs.values.len() < PARALLEL_ROWS / 4 {
        pairs.values.iter().map(ln_pair).collect()
    } else {
        // Series lengths vary with the frequency, so the halves interleave.
        let (even, odd) = std::thread::scope(|scope| {
            let handle = scope.spawn(|| {
                pairs
                    .values
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(ln_pair)
                    .collect::<Vec<_>>()
            });
            let even: Vec<f64> = pairs.values.iter().step_by(2).map(ln_pair).collect();
            (even, handle.join().unwrap_or_default())
        });
        if even.len() + odd.len() != pairs.values.len() {
            return f64::INFINITY;
        }
        let mut all = Vec::with_capacity(pairs.values.len());
        for i in 0..pairs.values.len() {
            all.push(if i % 2 == 0 { even[i / 2] } else { odd[i / 2] });
        }
        all
    };
    let base = -ln_gamma(r) + r * alpha.ln() + s * beta.ln();
    let by_x: Vec<(f64, f64)> = rows
        .frequencies
        .iter()
        .map(|&x| (ln_gamma(r + x), (s / (r + s + x)).ln()))
        .collect();
    let [sum] = rows.sum_rows(|i, row| {
        let x = rows.frequencies[row.x as usize];
        let t = rows.ts[row.t as usize];
        let (ln_gamma_rx, ln_share) = by_x[row.x as usize];
        let [at_recency, at_t] = pairs.rows[i];
        let ln_a0 = ln_sub_exp(ln_fs[at_recency as usize], ln_fs[at_t as usize]);
        let alive = -(r + x) * (alpha + t).ln() - s * (beta + t).ln();
        [base + ln_gamma_rx + ln_add_exp(alive, ln_share + ln_a0)]
    });
    let value = -sum / rows.total_weight;
    if value.is_finite() {
        value
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::models::bgnbd::BgNbd;
    use crate::functions::models::gamma_gamma::GammaGamma;
    use crate::functions::models::pareto_nbd::ParetoNbd;

    fn sample() -> Vec<(Customer, f64)> {
        [
            (0.0, 0.0, 38.86, 3.0),
            (2.0, 30.43, 38.86, 1.0),
            (5.0, 20.0, 30.0, 2.0),
        ]
        .iter()
        .map(|&(x, t_x, t, w)| (Customer::checked(x, t_x, t).unwrap(), w))
        .collect()
    }

    #[test]
    fn bgnbd_matches_per_customer_formula() {
        let customers = sample();
        let rows = GroupedRows::new(&customers);
        let theta = [
            0.243_f64.ln(),
            4.414_f64.ln(),
            0.793_f64.ln(),
            2.426_f64.ln(),
        ];
        let model = BgNbd::new(0.243, 4.414, 0.793, 2.426);
        let expected: f64 = -customers
            .iter()
            .map(|(c, w)| w * model.ln_likelihood(c).unwrap())
            .sum::<f64>()
            / 6.0;
        let (value, gradient) = bgnbd(&rows, &theta);
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        // The analytic gradient against central differences.
        for i in 0..4 {
            let mut up = theta;
            let mut down = theta;
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let numeric = (bgnbd(&rows, &up).0 - bgnbd(&rows, &down).0) / 2e-6;
            assert!(
                (gradient[i] - numeric).abs() < 1e-7,
                "{i}: {} vs {numeric}",
                gradient[i]
            );
        }
    }

    #[test]
    fn gamma_gamma_matches_per_customer_formula() {
        let rows = [
            ([1.0, 20.5, 0.0], 4.0),
            ([1.0, 31.0, 0.0], 1.0),
            ([3.0, 12.25, 0.0], 2.0),
            ([7.0, 40.0, 0.0], 1.0),
        ];
        let spend = SpendRows::new(&rows);
        let (p, q, v): (f64, f64, f64) = (6.25, 3.74, 15.44);
        let theta = [p.ln(), q.ln(), v.ln()];
        let model = GammaGamma::new(p, q, v);
        let expected: f64 = -rows
            .iter()
            .map(|([x, m, _], w)| w * model.ln_likelihood(*x, *m).unwrap())
            .sum::<f64>()
            / 8.0;
        let (value, gradient) = gamma_gamma(&spend, &theta);
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        // The analytic gradient against central differences.
        for i in 0..3 {
            let mut up = theta;
            let mut down = theta;
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let numeric =
                (gamma_gamma(&spend, &up).0 - gamma_gamma(&spend, &down).0) / 2e-6;
            assert!(
                (gradient[i] - numeric).abs() < 1e-7,
                "{i}: {} vs {numeric}",
                gradient[i]
            );
        }
    }

    #[test]
    fn pareto_matches_per_customer_formula() {
        let customers = sample();
        let rows = GroupedRows::new(&customers);
        for (alpha, beta) in [(10.578_f64, 11.669_f64), (12.0, 5.0)] {
            let theta = [0.553_f64.ln(), alpha.ln(), 0.606_f64.ln(), beta.ln()];
            let model = ParetoNbd::new(0.553, alpha, 0.606, beta);
            let expected: f64 = -customers
                .iter()
                .map(|(c, w)| w * model.ln_likelihood(c).unwrap())
                .sum::<f64>()
                / 6.0;
            let value = pareto_nbd(&rows, &theta);
            assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        }
    }
}

/// Repeat buyers' (frequency, mean spend) rows for the Gamma-Gamma fit, with the
/// per-row terms that do not depend on the parameters computed once.
#[derive(Debug)]
pub struct SpendRows {
    /// Distinct frequencies.
    frequencies: Vec<f64>,
    rows: Vec<SpendRow>,
    total_weight: f64,
}

#[derive(Debug, Clone, Copy)]
struct SpendRow {
    /// Index of the row's frequency in `frequencies`.
    frequency: u32,
    x: f64,
    m: f64,
    weight: f64,
    /// x (ln m + ln x).
    spend_term: f64,
    ln_m: f64,
}

impl SpendRows {
    /// Collects rows of `x > 0` repeat purchases of mean value `m > 0`, with weights.
    pub fn new(rows: &[([f64; 3], f64)]) -> Self {
        let mut frequencies = Distinct::default();
        let spend_rows: Vec<SpendRow> = rows
            .iter()
            .map(|([x, m, _], weight)| SpendRow {
                frequency: frequencies.id(*x),
                x: *x,
                m: *m,
                weight: *weight,
                spend_term: x * (m.ln() + x.ln()),
                ln_m: m.ln(),
            })
            .collect();
        Self {
            frequencies: frequencies.values,
            total_weight: spend_rows.iter().map(|row| row.weight).sum(),
            rows: spend_rows,
        }
    }

    /// Returns the total weight of the rows.
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }
}

/// Returns the Gamma-Gamma mean negative log-likelihood per customer at the
/// logarithms of (p, q, v), and its gradient.
///
/// Per row, the formula of [`super::models::gamma_gamma::GammaGamma::ln_likelihood`]
/// rearranged:
///
/// ```text
/// ln L = lnGamma(p x + q) - lnGamma(p x) - lnGamma(q) + q ln v
///      + p x (ln m + ln x) - ln m - (p x + q) ln(x m + v)
/// ```
///
/// The log-gamma terms are computed once per distinct frequency, so each row costs
/// one logarithm and one division. Each row's terms are added up before the rows
/// are summed: summing large terms over all rows first and subtracting them after
/// loses digits that the line search needs near the maximum.
pub fn gamma_gamma(rows: &SpendRows, theta: &[f64]) -> (f64, Vec<f64>) {
    let (p, q, v) = (theta[0].exp(), theta[1].exp(), theta[2].exp());
    if ![p, q, v]
        .iter()
        .all(|value| value.is_finite() && *value > 0.0)
    {
        return (f64::INFINITY, vec![0.0; 3]);
    }
    let (ln_v, ln_gamma_q, psi_q) = (v.ln(), ln_gamma(q), digamma(q));
    // Per distinct frequency: the log-gamma part of ln L and its derivatives by p
    // and q.
    let by_frequency: Vec<[f64; 3]> = rows
        .frequencies
        .iter()
        .map(|&x| {
            let px = p * x;
            let psi_total = digamma(px + q);
            [
                ln_gamma(px + q) - ln_gamma(px) - ln_gamma_q + q * ln_v,
                x * (psi_total - digamma(px)),
                psi_total - psi_q + ln_v,
            ]
        })
        .collect();

    let sums = weighted_sums(
        &rows.rows,
        |row| row.weight,
        |_, row| {
            let [common, d_common_p, d_common_q] = by_frequency[row.frequency as usize];
            let total = row.x * row.m + v;
            let ln_total = total.ln();
            let share = p * row.x + q;
            [
                common + p * row.spend_term - row.ln_m - share * ln_total,
                d_common_p + row.spend_term - row.x * ln_total,
                d_common_q - ln_total,
                q / v - share / total,
            ]
        },
    );
    let n = rows.total_weight;
    let gradient = vec![-sums[1] * p / n, -sums[2] * q / n, -sums[3] * v / n];
    let value = -sums[0] / n;
    if value.is_finite() && gradient.iter().all(|g| g.is_finite()) {
        (value, gradient)
    } else {
        (f64::INFINITY, vec![0.0; 3])
    }
}
