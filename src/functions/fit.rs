//! The fit aggregates: `bgnbd_fit`, `pareto_nbd_fit`, `mbgnbd_fit` and
//! `gamma_gamma_fit`.
//!
//! An accumulator keeps the distinct input rows with their counts, so its state
//! stays small (customers share statistics) and partial states merge across
//! partitions. `evaluate` maximises the weighted log-likelihood over the
//! logarithms of the parameters from a fixed start, so the same rows give the same
//! fit whatever the partitioning.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StringArray,
    StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};
use datafusion::scalar::ScalarValue;

use super::likelihood::{self, GroupedRows, RowHasher};
use super::models::{Customer, PurchaseKind, PurchaseModel};
use super::optimize::{
    Gradient, MinimizeError, Minimum, Tolerance, minimize, minimize_from,
};

/// Model that a fit aggregate fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FitKind {
    /// A purchase model from frequency, recency and t.
    Purchase(PurchaseKind),
    /// Gamma-Gamma from frequency and mean repeat spend.
    GammaGamma,
}

impl FitKind {
    /// Returns the SQL name of the aggregate.
    pub fn function_name(self) -> &'static str {
        match self {
            FitKind::Purchase(PurchaseKind::BgNbd) => "bgnbd_fit",
            FitKind::Purchase(PurchaseKind::ParetoNbd) => "pareto_nbd_fit",
            FitKind::Purchase(PurchaseKind::MbgNbd) => "mbgnbd_fit",
            FitKind::GammaGamma => "gamma_gamma_fit",
        }
    }

    fn model_name(self) -> &'static str {
        match self {
            FitKind::Purchase(kind) => kind.name(),
            FitKind::GammaGamma => "gamma_gamma",
        }
    }

    fn params(self) -> Vec<&'static str> {
        match self {
            FitKind::Purchase(kind) => kind.params().to_vec(),
            FitKind::GammaGamma => vec!["p", "q", "v"],
        }
    }

    fn arity(self) -> usize {
        match self {
            FitKind::Purchase(_) => 3,
            FitKind::GammaGamma => 2,
        }
    }

    /// Returns the struct type the aggregate returns: `model`, the parameters,
    /// `log_likelihood`, `n` (customers fitted) and `excluded` (rows left out).
    pub fn struct_type(self) -> DataType {
        DataType::Struct(self.struct_fields())
    }

    fn struct_fields(self) -> Fields {
        let mut fields = vec![Field::new("model", DataType::Utf8, false)];
        for name in self.params() {
            fields.push(Field::new(name, DataType::Float64, false));
        }
        fields.push(Field::new("log_likelihood", DataType::Float64, false));
        fields.push(Field::new("n", DataType::Int64, false));
        fields.push(Field::new("excluded", DataType::Int64, false));
        Fields::from(fields)
    }
}

/// A fit aggregate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FitUdf {
    kind: FitKind,
    signature: Signature,
}

impl FitUdf {
    /// Creates the aggregate for `kind`.
    pub fn new(kind: FitKind) -> Self {
        let signature = Signature::uniform(
            kind.arity(),
            vec![DataType::Float64],
            Volatility::Immutable,
        );
        Self { kind, signature }
    }
}

impl AggregateUDFImpl for FitUdf {
    fn name(&self) -> &str {
        self.kind.function_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.kind.struct_type())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(FitAccumulator::new(self.kind)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str| {
            let item = Arc::new(Field::new_list_field(DataType::Float64, true));
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(item),
                true,
            ))
        };
        Ok(vec![
            list("key0"),
            list("key1"),
            list("key2"),
            list("weight"),
            Arc::new(Field::new(
                format!("{}[excluded]", args.name),
                DataType::Int64,
                true,
            )),
        ])
    }
}

/// Distinct input rows, each with the number of customers that share it.
#[derive(Debug)]
struct FitAccumulator {
    kind: FitKind,
    /// Rows added by `update_batch`, by the bits of their values.
    rows: HashMap<[u64; 3], f64, BuildHasherDefault<RowHasher>>,
    /// Rows of merged partial states, each state's rows distinct but a row may
    /// recur across states; `sorted_rows` combines them. Appending them is
    /// cheaper than a hash insert each, and the fit sorts the rows anyway.
    merged: Vec<([f64; 3], f64)>,
    excluded: i64,
}

impl FitAccumulator {
    fn new(kind: FitKind) -> Self {
        Self {
            kind,
            rows: HashMap::default(),
            merged: Vec::new(),
            excluded: 0,
        }
    }

    /// Adds one row; NULL rows are skipped, rows a model cannot use are counted.
    fn add(&mut self, values: [Option<f64>; 3], weight: f64) {
        let [Some(k0), Some(k1), Some(k2)] = values else {
            return;
        };
        let usable = match self.kind {
            FitKind::Purchase(_) => Customer::checked(k0, k1, k2).is_some(),
            // Gamma-Gamma learns only from repeat buyers, and needs positive spend.
            FitKind::GammaGamma => {
                if !(k0.is_finite() && k0 >= 0.0 && k0 == k0.floor() && k1.is_finite()) {
                    false
                } else if k0 == 0.0 {
                    return;
                } else {
                    k1 > 0.0
                }
            }
        };
        if !usable {
            self.excluded += weight as i64;
            return;
        }
        // +0.0 and -0.0 must share a key.
        let key = [k0 + 0.0, k1 + 0.0, k2 + 0.0].map(f64::to_bits);
        *self.rows.entry(key).or_insert(0.0) += weight;
    }

    /// Returns the distinct rows in order of their values, equal rows combined.
    fn sorted_rows(&self) -> Vec<([f64; 3], f64)> {
        let mut rows: Vec<([f64; 3], f64)> =
            Vec::with_capacity(self.rows.len() + self.merged.len());
        rows.extend(
            self.rows
                .iter()
                .map(|(key, weight)| (key.map(f64::from_bits), *weight)),
        );
        rows.extend_from_slice(&self.merged);
        // Keys hold no NaN (rows with NaN are excluded), so the order is total.
        rows.sort_unstable_by(|a, b| {
            a.0[0]
                .total_cmp(&b.0[0])
                .then(a.0[1].total_cmp(&b.0[1]))
                .then(a.0[2].total_cmp(&b.0[2]))
        });
        let mut combined: Vec<([f64; 3], f64)> = Vec::with_capacity(rows.len());
        for (key, weight) in rows {
            match combined.last_mut() {
                Some(last) if last.0 == key => last.1 += weight,
                _ => combined.push((key, weight)),
            }
        }
        combined
    }
}

fn float_column(array: &ArrayRef) -> Result<&Float64Array> {
    array.as_primitive_opt::<Float64Type>().ok_or_else(|| {
        DataFusionError::Internal(format!(
            "fit input is {}, not Float64",
            array.data_type()
        ))
    })
}

impl Accumulator for FitAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let columns: Vec<&Float64Array> =
            values.iter().map(float_column).collect::<Result<_>>()?;
        for row in 0..values[0].len() {
            let value = |i: usize| {
                columns
                    .get(i)
                    .map_or(Some(0.0), |c| c.is_valid(row).then(|| c.value(row)))
            };
            self.add([value(0), value(1), value(2)], 1.0);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists: Vec<&ListArray> = states[..4]
            .iter()
            .map(|state| {
                state.as_list_opt::<i32>().ok_or_else(|| {
                    DataFusionError::Internal("fit state is not a list".to_string())
                })
            })
            .collect::<Result<_>>()?;
        let excluded = states[4].as_primitive::<Int64Type>();
        for index in 0..states[0].len() {
            if lists[0].is_null(index) {
                continue;
            }
            let values: Vec<ArrayRef> = lists.iter().map(|l| l.value(index)).collect();
            let columns: Vec<&Float64Array> =
                values.iter().map(float_column).collect::<Result<_>>()?;
            self.merged.extend((0..columns[0].len()).map(|row| {
                let key = [
                    columns[0].value(row),
                    columns[1].value(row),
                    columns[2].value(row),
                ]
                .map(|v| v + 0.0);
                (key, columns[3].value(row))
            }));
            if excluded.is_valid(index) {
                self.excluded += excluded.value(index);
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let rows = if self.merged.is_empty() {
            // Unsorted: `evaluate` sorts after the merge.
            self.rows
                .iter()
                .map(|(key, weight)| (key.map(f64::from_bits), *weight))
                .collect()
        } else {
            self.sorted_rows()
        };
        let list = |values: Vec<f64>| {
            let values = Float64Array::from(values);
            let field = Arc::new(Field::new_list_field(DataType::Float64, true));
            let offsets = OffsetBuffer::from_lengths([values.len()]);
            let array = ListArray::new(field, offsets, Arc::new(values), None);
            ScalarValue::List(Arc::new(array))
        };
        Ok(vec![
            list(rows.iter().map(|r| r.0[0]).collect()),
            list(rows.iter().map(|r| r.0[1]).collect()),
            list(rows.iter().map(|r| r.0[2]).collect()),
            list(rows.iter().map(|r| r.1).collect()),
            ScalarValue::Int64(Some(self.excluded)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let rows = self.sorted_rows();
        if rows.is_empty() {
            return ScalarValue::try_from(self.kind.struct_type());
        }
        let fitted = match self.kind {
            FitKind::Purchase(kind) => fit_purchase(kind, &rows),
            FitKind::GammaGamma => fit_gamma_gamma(&rows),
        }
        .map_err(|message| {
            DataFusionError::Execution(format!(
                "{}: {message}",
                self.kind.function_name()
            ))
        })?;
        let n: f64 = rows.iter().map(|r| r.1).sum();
        Ok(self.fitted_struct(&fitted.params, fitted.log_likelihood, n as i64))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.rows.capacity() * (3 * 8 + 8 + 8)
            + self.merged.capacity() * std::mem::size_of::<([f64; 3], f64)>()
    }
}

impl FitAccumulator {
    fn fitted_struct(&self, params: &[f64], log_likelihood: f64, n: i64) -> ScalarValue {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(StringArray::from(vec![self.kind.model_name()]))];
        for value in params {
            columns.push(Arc::new(Float64Array::from(vec![*value])));
        }
        columns.push(Arc::new(Float64Array::from(vec![log_likelihood])));
        columns.push(Arc::new(Int64Array::from(vec![n])));
        columns.push(Arc::new(Int64Array::from(vec![self.excluded])));
        let array = StructArray::new(self.kind.struct_fields(), columns, None);
        ScalarValue::Struct(Arc::new(array))
    }
}

/// A maximum-likelihood fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Parameters in struct order.
    pub params: Vec<f64>,
    /// Sum of the log-likelihood over the fitted customers.
    pub log_likelihood: f64,
}

const TOLERANCE: Tolerance = Tolerance {
    // On the mean negative log-likelihood per customer.
    gradient: 1e-9,
    max_iterations: 1000,
};

/// Fits a purchase model to distinct (frequency, recency, t) rows with weights.
pub fn fit_purchase(
    kind: PurchaseKind,
    rows: &[([f64; 3], f64)],
) -> Result<Fitted, String> {
    fit_purchase_warm_above(kind, rows, WARM_START_ROWS)
}

/// [`fit_purchase`], fitting a sample first when there are more than
/// `warm_start_rows` distinct rows.
fn fit_purchase_warm_above(
    kind: PurchaseKind,
    rows: &[([f64; 3], f64)],
    warm_start_rows: usize,
) -> Result<Fitted, String> {
    let customers: Vec<(Customer, f64)> = rows
        .iter()
        .filter_map(|([x, t_x, t], w)| Customer::checked(*x, *t_x, *t).map(|c| (c, *w)))
        .collect();
    let total: f64 = customers.iter().map(|c| c.1).sum();
    let max_t = customers.iter().map(|c| c.0.t).fold(0.0, f64::max);
    if max_t <= 0.0 {
        // With no time observed the likelihood is flat, and any parameters fit.
        return Err(
            "every customer has t = 0, so there is nothing to fit; check that \
                    the observation end is after the first purchases"
                .to_string(),
        );
    }
    // Scale parameters start at a tenth of the longest observation, the others at 1.
    let scale = (max_t / 10.0).ln();
    let start = match kind {
        PurchaseKind::BgNbd | PurchaseKind::MbgNbd => vec![0.0, scale, 0.0, 0.0],
        PurchaseKind::ParetoNbd => vec![0.0, scale, 0.0, scale],
    };
    let started = std::time::Instant::now();
    // On many distinct rows, a fit on a sample finds the neighbourhood of the
    // maximum and the curvature there cheaply. The full fit then converges in a
    // few near-Newton steps, or starts cold when the sample fit failed.
    let warm = (customers.len() > warm_start_rows)
        .then(|| {
            let sample = sample_rows(&customers, SAMPLE_ROWS.min(customers.len() / 4));
            minimize_purchase(kind, &sample, &start, None, SAMPLE_TOLERANCE).ok()
        })
        .flatten();
    let sample_iterations = warm.as_ref().map_or(0, |m| m.iterations);
    let minimum = match &warm {
        Some(first) => minimize_purchase(
            kind,
            &customers,
            &first.x,
            Some(&first.inverse_hessian),
            TOLERANCE,
        )
        .or_else(|_| minimize_purchase(kind, &customers, &start, None, TOLERANCE)),
        None => minimize_purchase(kind, &customers, &start, None, TOLERANCE),
    }
    .map_err(|error| {
        describe_failure(
            error,
            "check that frequency, recency and t share one time unit",
        )
    })?;
    tracing::debug!(
        model = kind.name(),
        distinct_rows = customers.len(),
        sample_iterations,
        iterations = minimum.iterations,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "fit converged"
    );
    Ok(Fitted {
        params: minimum.x.iter().map(|v| v.exp()).collect(),
        log_likelihood: -minimum.value * total,
    })
}

/// Distinct rows above which a purchase fit first fits a sample of them.
const WARM_START_ROWS: usize = 40_000;

/// Distinct rows in that sample, about.
const SAMPLE_ROWS: usize = 10_000;

/// The sample fit only has to come near the maximum.
const SAMPLE_TOLERANCE: Tolerance = Tolerance {
    gradient: 1e-6,
    max_iterations: 1000,
};

/// Minimises a purchase model's mean negative log-likelihood over `customers`.
fn minimize_purchase(
    kind: PurchaseKind,
    customers: &[(Customer, f64)],
    start: &[f64],
    inverse_hessian: Option<&[f64]>,
    tolerance: Tolerance,
) -> Result<Minimum, MinimizeError> {
    let total: f64 = customers.iter().map(|c| c.1).sum();
    let grouped = GroupedRows::new(customers);
    // BG/NBD computes value and gradient together; BFGS requests the gradient at
    // the point whose value it just accepted, so the last evaluation is kept.
    let last: RefCell<Option<(Vec<f64>, Vec<f64>)>> = RefCell::new(None);
    let bgnbd = |theta: &[f64]| {
        let (value, gradient) = likelihood::bgnbd(&grouped, theta);
        *last.borrow_mut() = Some((theta.to_vec(), gradient));
        value
    };
    let objective = |theta: &[f64]| match kind {
        PurchaseKind::BgNbd => bgnbd(theta),
        PurchaseKind::ParetoNbd => likelihood::pareto_nbd(&grouped, theta),
        PurchaseKind::MbgNbd => {
            mean_negative_ln_likelihood(kind, customers, total, theta)
        }
    };
    let analytic = |theta: &[f64]| {
        if let Some((point, gradient)) = last.borrow().as_ref()
            && point.as_slice() == theta
        {
            return gradient.clone();
        }
        likelihood::bgnbd(&grouped, theta).1
    };
    let gradient: Option<Gradient<'_>> = match kind {
        PurchaseKind::BgNbd => Some(&analytic),
        PurchaseKind::ParetoNbd | PurchaseKind::MbgNbd => None,
    };
    minimize_from(&objective, gradient, start, inverse_hessian, tolerance)
}

/// Returns about `target` of the distinct rows, weighted for the rows left out.
/// Rows that carry at least as many customers as a sampled row would are all
/// kept. Every k-th of the others is kept with its weight multiplied by k. The
/// choice depends only on the rows' order, so a fit stays deterministic.
fn sample_rows(customers: &[(Customer, f64)], target: usize) -> Vec<(Customer, f64)> {
    let every = customers.len().div_ceil(target).max(1);
    let heavy = every as f64;
    let mut light = 0usize;
    let mut sample = Vec::with_capacity(target * 2);
    for (customer, weight) in customers {
        if *weight >= heavy {
            sample.push((*customer, *weight));
        } else {
            if light.is_multiple_of(every) {
                sample.push((*customer, weight * heavy));
            }
            light += 1;
        }
    }
    sample
}

/// Returns the mean negative log-likelihood per customer from the per-customer
/// formula, at the logarithms of the parameters.
fn mean_negative_ln_likelihood(
    kind: PurchaseKind,
    customers: &[(Customer, f64)],
    total: f64,
    theta: &[f64],
) -> f64 {
    let params = [
        theta[0].exp(),
        theta[1].exp(),
        theta[2].exp(),
        theta[3].exp(),
    ];
    let Some(model) = PurchaseModel::new(kind, params) else {
        return f64::INFINITY;
    };
    let mut sum = 0.0;
    for (customer, weight) in customers {
        match model.ln_likelihood(customer) {
            Some(value) => sum += weight * value,
            None => return f64::INFINITY,
        }
    }
    -sum / total
}

/// Fits Gamma-Gamma to distinct (frequency, mean spend) rows with weights.
pub fn fit_gamma_gamma(rows: &[([f64; 3], f64)]) -> Result<Fitted, String> {
    let spend = likelihood::SpendRows::new(rows);
    let total = spend.total_weight();
    let mean_spend = rows.iter().map(|r| r.0[1] * r.1).sum::<f64>() / total;
    let start = vec![0.0, 2.0_f64.ln(), mean_spend.ln()];
    // One pass gives both the value and the gradient. BFGS requests the gradient
    // at the point whose value it just accepted, so the last evaluation is kept.
    let last: RefCell<Option<(Vec<f64>, Vec<f64>)>> = RefCell::new(None);
    let objective = |theta: &[f64]| {
        let (value, gradient) = likelihood::gamma_gamma(&spend, theta);
        *last.borrow_mut() = Some((theta.to_vec(), gradient));
        value
    };
    let gradient = |theta: &[f64]| {
        if let Some((point, gradient)) = last.borrow().as_ref()
            && point.as_slice() == theta
        {
            return gradient.clone();
        }
        likelihood::gamma_gamma(&spend, theta).1
    };
    let minimum =
        minimize(&objective, Some(&gradient), &start, TOLERANCE).map_err(|error| {
            describe_failure(error, "check that monetary_value is the mean repeat spend")
        })?;
    Ok(Fitted {
        params: minimum.x.iter().map(|v| v.exp()).collect(),
        log_likelihood: -minimum.value * total,
    })
}

fn describe_failure(error: MinimizeError, advice: &str) -> String {
    match error {
        MinimizeError::BadStart => {
            format!("the log-likelihood is not finite at the start; {advice}")
        }
        MinimizeError::NotConverged { gradient, x } => {
            let params: Vec<String> =
                x.iter().map(|v| format!("{:.4}", v.exp())).collect();
            format!(
                "the fit did not converge (parameters reached {}, largest gradient \
                 {gradient:.2e}); {advice}, or fit on more customers",
                params.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::models::bgnbd::BgNbd;
    use crate::functions::models::pareto_nbd::ParetoNbd;

    /// Distinct rows of the CDNOW calibration summary (frequency, recency, T in
    /// weeks) with their counts.
    fn calibration_rows() -> Vec<([f64; 3], f64)> {
        let text = include_str!("../../data/cdnow/cdnow_customers_summary.csv");
        let mut accumulator = FitAccumulator::new(FitKind::Purchase(PurchaseKind::BgNbd));
        for line in text.lines().skip(1) {
            let v: Vec<f64> = line
                .split(',')
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            accumulator.add([Some(v[0]), Some(v[1]), Some(v[2])], 1.0);
        }
        accumulator.sorted_rows()
    }

    fn spend_rows() -> Vec<([f64; 3], f64)> {
        let text = include_str!(
            "../../data/cdnow/cdnow_customers_summary_with_transactions.csv"
        );
        let mut accumulator = FitAccumulator::new(FitKind::GammaGamma);
        for line in text.lines().skip(1) {
            let v: Vec<f64> = line
                .split(',')
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            accumulator.add([Some(v[0]), Some(v[3]), Some(0.0)], 1.0);
        }
        accumulator.sorted_rows()
    }

    fn assert_near(name: &str, actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= tolerance,
            "{name}: {actual} is not within {tolerance} of {expected}"
        );
    }

    #[test]
    fn bgnbd_fit_matches_published() {
        let fitted = fit_purchase(PurchaseKind::BgNbd, &calibration_rows()).unwrap();
        let [r, alpha, a, b] = fitted.params[..] else {
            panic!()
        };
        assert_near("r", r, 0.243, 5e-4);
        assert_near("alpha", alpha, 4.414, 5e-4);
        assert_near("a", a, 0.793, 5e-4);
        assert_near("b", b, 2.426, 5e-4);
        assert_near("log-likelihood", fitted.log_likelihood, -9582.4, 0.1);

        // Unconditional expected purchases published with this fit.
        let model = BgNbd::new(r, alpha, a, b);
        for (t, expected) in [(1.0, 0.0532), (3.0, 0.1506), (32.0, 1.0437)] {
            let value = model.unconditional_expected(t).unwrap();
            assert_near(&format!("E[X({t})]"), value, expected, 5e-5);
        }
    }

    #[test]
    fn pareto_nbd_fit_matches_published() {
        let fitted = fit_purchase(PurchaseKind::ParetoNbd, &calibration_rows()).unwrap();
        let [r, alpha, s, beta] = fitted.params[..] else {
            panic!()
        };
        assert_near("r", r, 0.553, 2e-3);
        assert_near("alpha", alpha, 10.578, 2e-3);
        assert_near("s", s, 0.606, 2e-3);
        assert_near("beta", beta, 11.669, 2e-3);
        assert_near("log-likelihood", fitted.log_likelihood, -9595.0, 0.1);
        let model = ParetoNbd::new(r, alpha, s, beta);
        let customer = Customer::checked(26.0, 30.86, 31.0).unwrap();
        assert_near("p_alive", model.p_alive(&customer).unwrap(), 0.9979, 5e-5);
    }

    #[test]
    fn mbgnbd_fit_matches_published() {
        let fitted = fit_purchase(PurchaseKind::MbgNbd, &calibration_rows()).unwrap();
        let [r, alpha, a, b] = fitted.params[..] else {
            panic!()
        };
        assert_near("r", r, 0.525, 5e-4);
        assert_near("alpha", alpha, 6.183, 5e-4);
        assert_near("a", a, 0.891, 5e-4);
        assert_near("b", b, 1.614, 5e-4);
    }

    #[test]
    fn gamma_gamma_fit_matches_published() {
        let rows = spend_rows();
        let customers: f64 = rows.iter().map(|r| r.1).sum();
        assert_eq!(customers, 946.0);
        let fitted = fit_gamma_gamma(&rows).unwrap();
        let [p, q, v] = fitted.params[..] else {
            panic!()
        };
        assert_near("p", p, 6.25, 0.01);
        assert_near("q", q, 3.74, 0.01);
        assert_near("v", v, 15.44, 0.01);
        // Population mean spend with the unrounded estimates.
        assert_near("mean spend", p * v / (q - 1.0), 35.17, 5e-3);
    }

    #[test]
    fn warm_start_finds_the_same_fit() {
        let rows = calibration_rows();
        for kind in [
            PurchaseKind::BgNbd,
            PurchaseKind::ParetoNbd,
            PurchaseKind::MbgNbd,
        ] {
            let cold = fit_purchase_warm_above(kind, &rows, usize::MAX).unwrap();
            let warm = fit_purchase_warm_above(kind, &rows, 0).unwrap();
            for (name, (w, c)) in kind
                .params()
                .iter()
                .zip(warm.params.iter().zip(&cold.params))
            {
                assert!(
                    ((w - c) / c).abs() < 1e-6,
                    "{} {name}: warm {w} against cold {c}",
                    kind.name()
                );
            }
            assert!((warm.log_likelihood - cold.log_likelihood).abs() < 1e-6);
        }
    }

    #[test]
    fn sample_rows_weights_light_rows() {
        let customer = |x: f64| Customer::checked(x, x, 10.0).unwrap();
        let rows: Vec<(Customer, f64)> = (0..10)
            .map(|i| (customer(f64::from(i)), if i == 4 { 7.0 } else { 1.0 }))
            .collect();
        let sample = sample_rows(&rows, 3);
        // Every 4th light row stands for 4 customers; the row of 7 stays whole.
        let kept: Vec<(f64, f64)> =
            sample.iter().map(|(c, w)| (c.frequency, *w)).collect();
        assert_eq!(kept, vec![(0.0, 4.0), (4.0, 7.0), (5.0, 4.0), (9.0, 4.0)]);
    }

    #[test]
    fn partial_states_merge_to_the_same_fit() {
        let rows = calibration_rows();
        let kind = FitKind::Purchase(PurchaseKind::BgNbd);
        let mut whole = FitAccumulator::new(kind);
        let mut left = FitAccumulator::new(kind);
        let mut right = FitAccumulator::new(kind);
        for (index, (key, weight)) in rows.iter().enumerate() {
            let values = key.map(Some);
            whole.add(values, *weight);
            if index % 2 == 0 {
                left.add(values, *weight)
            } else {
                right.add(values, *weight)
            }
        }
        let state: Vec<ArrayRef> = right
            .state()
            .unwrap()
            .into_iter()
            .map(|value| value.to_array().unwrap())
            .collect();
        left.merge_batch(&state).unwrap();
        assert_eq!(left.evaluate().unwrap(), whole.evaluate().unwrap());
    }

    #[test]
    fn fit_without_observed_time_fails() {
        let rows = vec![([0.0, 0.0, 0.0], 5.0)];
        let error = fit_purchase(PurchaseKind::BgNbd, &rows).unwrap_err();
        assert!(error.contains("every customer has t = 0"), "{error}");
    }

    #[test]
    fn invalid_rows_are_excluded() {
        let mut accumulator = FitAccumulator::new(FitKind::Purchase(PurchaseKind::BgNbd));
        accumulator.add([Some(1.5), Some(1.0), Some(2.0)], 1.0);
        accumulator.add([Some(1.0), Some(3.0), Some(2.0)], 1.0);
        accumulator.add([Some(-1.0), Some(0.0), Some(2.0)], 1.0);
        accumulator.add([None, Some(0.0), Some(2.0)], 1.0);
        assert_eq!(accumulator.excluded, 3);
        assert!(accumulator.rows.is_empty());
    }
}
