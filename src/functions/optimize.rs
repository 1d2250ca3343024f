//! Unconstrained minimisation by BFGS, for maximum-likelihood fits.
//!
//! Fits minimise the negative log-likelihood over the logarithms of the model
//! parameters, so every step keeps the parameters positive. Gradients come from
//! the caller or, when it has none, from central differences.

/// A minimum found by [`minimize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// Point of the minimum.
    pub x: Vec<f64>,
    /// Objective value there.
    pub value: f64,
    /// BFGS iterations taken.
    pub iterations: usize,
    /// Estimate of the inverse Hessian there, row-major; a later minimisation of
    /// a similar objective can start from it.
    pub inverse_hessian: Vec<f64>,
}

/// Reason [`minimize`] stopped without a minimum.
#[derive(Debug, Clone, PartialEq)]
pub enum MinimizeError {
    /// The objective is not finite at the start.
    BadStart,
    /// The iteration limit was reached before the gradient was small enough.
    NotConverged {
        /// Largest gradient component at the last point.
        gradient: f64,
        /// Point reached.
        x: Vec<f64>,
    },
}

/// A gradient function: the gradient of the objective at a point.
pub type Gradient<'a> = &'a dyn Fn(&[f64]) -> Vec<f64>;

/// Stopping rules of [`minimize`].
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Converged when every gradient component is at most this.
    pub gradient: f64,
    /// Iteration limit.
    pub max_iterations: usize,
}

/// Minimises `objective` from `start` by BFGS with a backtracking line search.
///
/// `objective` returns `f64::INFINITY` (or NaN) where it is undefined; the line
/// search then takes a shorter step. `gradient` may be `None` for central
/// differences.
pub fn minimize(
    objective: &dyn Fn(&[f64]) -> f64,
    gradient: Option<Gradient<'_>>,
    start: &[f64],
    tolerance: Tolerance,
) -> Result<Minimum, MinimizeError> {
    minimize_from(objective, gradient, start, None, tolerance)
}

/// Like [`minimize`], with an estimate of the inverse Hessian at `start` (row-major)
/// in place of the identity: from the minimum of a similar objective, BFGS then
/// takes near-Newton steps from the first iteration.
pub fn minimize_from(
    objective: &dyn Fn(&[f64]) -> f64,
    gradient: Option<Gradient<'_>>,
    start: &[f64],
    inverse_hessian: Option<&[f64]>,
    tolerance: Tolerance,
) -> Result<Minimum, MinimizeError> {
    let n = start.len();
    let grad = |x: &[f64]| match gradient {
        Some(g) => g(x),
        None => central_difference(objective, x),
    };
    let mut x = start.to_vec();
    let mut value = objective(&x);
    if !value.is_finite() {
        return Err(MinimizeError::BadStart);
    }
    let mut g = grad(&x);
    // Inverse Hessian estimate, row-major.
    let mut h = match inverse_hessian {
        Some(h) if h.len() == n * n && h.iter().all(|v| v.is_finite()) => h.to_vec(),
        _ => identity(n),
    };
    let mut stalled = 0;
    for iteration in 0..tolerance.max_iterations {
        let largest = max_abs(&g);
        if largest <= tolerance.gradient {
            return Ok(Minimum {
                x,
                value,
                iterations: iteration,
                inverse_hessian: h,
            });
        }
        let mut direction: Vec<f64> = (0..n)
            .map(|i| -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>())
            .collect();
        let mut slope = dot(&direction, &g);
        if slope >= 0.0 {
            // The estimate lost positive definiteness: restart from steepest descent.
            h = identity(n);
            direction = g.iter().map(|v| -v).collect();
            slope = dot(&direction, &g);
        }

        let Some((step, next_x, next_value)) =
            line_search(objective, &x, value, &direction, slope)
        else {
            if stalled > 0 {
                break;
            }
            // No decrease along the BFGS direction: retry once along the gradient.
            stalled += 1;
            h = identity(n);
            continue;
        };
        stalled = 0;
        let next_g = grad(&next_x);
        let s: Vec<f64> = direction.iter().map(|d| d * step).collect();
        let y: Vec<f64> = next_g.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            update_inverse_hessian(&mut h, &s, &y, sy);
        }
        let improvement = value - next_value;
        x = next_x;
        value = next_value;
        g = next_g;
        // A step that no longer changes the value in the last digits is converged
        // when the gradient is also near the tolerance.
        if improvement.abs() <= 1e-15 * value.abs()
            && max_abs(&g) <= 100.0 * tolerance.gradient
        {
            return Ok(Minimum {
                x,
                value,
                iterations: iteration + 1,
                inverse_hessian: h,
            });
        }
    }
    Err(MinimizeError::NotConverged {
        gradient: max_abs(&g),
        x,
    })
}

/// Backtracking line search with the Armijo condition; returns the step, the point
/// and its value.
fn line_search(
    objective: &dyn Fn(&[f64]) -> f64,
    x: &[f64],
    value: f64,
    direction: &[f64],
    slope: f64,
) -> Option<(f64, Vec<f64>, f64)> {
    // Steps on log-parameters beyond 10 would multiply a parameter by e^10 at once.
    let longest = max_abs(direction);
    let mut step = if longest > 10.0 { 10.0 / longest } else { 1.0 };
    for _ in 0..60 {
        let candidate: Vec<f64> =
            x.iter().zip(direction).map(|(a, d)| a + step * d).collect();
        let candidate_value = objective(&candidate);
        if candidate_value.is_finite() && candidate_value <= value + 1e-4 * step * slope {
            return Some((step, candidate, candidate_value));
        }
        step *= 0.5;
    }
    None
}

fn update_inverse_hessian(h: &mut [f64], s: &[f64], y: &[f64], sy: f64) {
    let n = s.len();
    let rho = 1.0 / sy;
    let hy: Vec<f64> = (0..n)
        .map(|i| (0..n).map(|j| h[i * n + j] * y[j]).sum())
        .collect();
    let yhy = dot(y, &hy);
    for i in 0..n {
        for j in 0..n {
            h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j])
                + (rho * rho * yhy + rho) * s[i] * s[j];
        }
    }
}

fn central_difference(objective: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut point = x.to_vec();
    (0..x.len())
        .map(|i| {
            let step = 1e-5 * x[i].abs().max(1.0);
            point[i] = x[i] + step;
            let up = objective(&point);
            point[i] = x[i] - step;
            let down = objective(&point);
            point[i] = x[i];
            (up - down) / (2.0 * step)
        })
        .collect()
}

fn identity(n: usize) -> Vec<f64> {
    let mut h = vec![0.0; n * n];
    for i in 0..n {
        h[i * n + i] = 1.0;
    }
    h
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, v| {
        if v.is_nan() {
            f64::INFINITY
        } else {
            m.max(v.abs())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rosenbrock_minimum() {
        let rosenbrock =
            |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let tolerance = Tolerance {
            gradient: 1e-8,
            max_iterations: 500,
        };
        let minimum = minimize(&rosenbrock, None, &[-1.2, 1.0], tolerance).unwrap();
        assert!((minimum.x[0] - 1.0).abs() < 1e-5, "{:?}", minimum);
        assert!((minimum.x[1] - 1.0).abs() < 1e-5, "{:?}", minimum);
    }

    #[test]
    fn infinite_start_is_an_error() {
        let tolerance = Tolerance {
            gradient: 1e-8,
            max_iterations: 10,
        };
        let result = minimize(&|_| f64::INFINITY, None, &[0.0], tolerance);
        assert_eq!(result, Err(MinimizeError::BadStart));
    }
}
