//! The score functions: P(alive), expected purchases, expected spend and CLV.
//!
//! Each takes customer statistics and a model struct, either a fit's result (a
//! column, for example through a `CROSS JOIN`) or a `named_struct(...)` literal. A
//! NULL argument or invalid statistics give NULL, never NaN or
//! infinity.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::likelihood::RowHasher;
use super::models::gamma_gamma::GammaGamma;
use super::models::{Customer, PurchaseKind, PurchaseModel, expected_from_parts};

/// Kind of score function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreKind {
    /// `<model>_p_alive(frequency, recency, t, model)`.
    PAlive(PurchaseKind),
    /// `<model>_expected_purchases(horizon, frequency, recency, t, model)`.
    ExpectedPurchases(PurchaseKind),
    /// `gamma_gamma_expected_spend(frequency, monetary_value, model)`.
    ExpectedSpend,
    /// `clv(frequency, recency, t, monetary_value, purchase_model, spend_model,
    /// months, monthly_discount_rate, periods_per_month)`.
    Clv,
}

impl ScoreKind {
    /// Returns the SQL name.
    pub fn function_name(self) -> &'static str {
        match self {
            ScoreKind::PAlive(PurchaseKind::BgNbd) => "bgnbd_p_alive",
            ScoreKind::PAlive(PurchaseKind::ParetoNbd) => "pareto_nbd_p_alive",
            ScoreKind::PAlive(PurchaseKind::MbgNbd) => "mbgnbd_p_alive",
            ScoreKind::ExpectedPurchases(PurchaseKind::BgNbd) => {
                "bgnbd_expected_purchases"
            }
            ScoreKind::ExpectedPurchases(PurchaseKind::ParetoNbd) => {
                "pareto_nbd_expected_purchases"
            }
            ScoreKind::ExpectedPurchases(PurchaseKind::MbgNbd) => {
                "mbgnbd_expected_purchases"
            }
            ScoreKind::ExpectedSpend => "gamma_gamma_expected_spend",
            ScoreKind::Clv => "clv",
        }
    }

    /// Returns the positions of the model arguments and the numeric argument count.
    fn layout(self) -> (&'static [usize], usize) {
        match self {
            ScoreKind::PAlive(_) => (&[3], 4),
            ScoreKind::ExpectedPurchases(_) => (&[4], 5),
            ScoreKind::ExpectedSpend => (&[2], 3),
            ScoreKind::Clv => (&[4, 5], 9),
        }
    }
}

/// A score function.
///
/// `invalid` counts the rows whose statistics were invalid (negative, recency
/// above t, frequency not whole), which give NULL.
#[derive(Debug)]
pub struct ScoreUdf {
    kind: ScoreKind,
    signature: Signature,
    invalid: Arc<AtomicU64>,
}

impl ScoreUdf {
    /// Creates the score function of `kind`, counting invalid rows in `invalid`.
    pub fn new(kind: ScoreKind, invalid: Arc<AtomicU64>) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
            invalid,
        }
    }
}

impl PartialEq for ScoreUdf {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

impl Eq for ScoreUdf {}

impl std::hash::Hash for ScoreUdf {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
    }
}

impl ScalarUDFImpl for ScoreUdf {
    fn name(&self) -> &str {
        self.kind.function_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    /// Casts the statistics to DOUBLE and checks each model argument's fields.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.kind.function_name();
        let (models, count) = self.kind.layout();
        if arg_types.len() != count {
            return plan_err!("{name} takes {count} arguments, got {}", arg_types.len());
        }
        let mut coerced = Vec::with_capacity(count);
        for (index, data_type) in arg_types.iter().enumerate() {
            if models.contains(&index) {
                check_model_type(name, index, self.model_role(index), data_type)?;
                coerced.push(data_type.clone());
            } else if data_type.is_numeric() || data_type.is_null() {
                coerced.push(DataType::Float64);
            } else {
                return plan_err!(
                    "{name}: argument {} must be numeric, got {data_type}",
                    index + 1
                );
            }
        }
        Ok(coerced)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|value| value.to_array(rows))
            .collect::<Result<_>>()?;
        let mut invalid = 0;
        let result = match self.kind {
            ScoreKind::PAlive(kind) => p_alive(kind, &arrays, rows, &mut invalid)?,
            ScoreKind::ExpectedPurchases(kind) => {
                expected_purchases(kind, &arrays, rows, &mut invalid)?
            }
            ScoreKind::ExpectedSpend => expected_spend(&arrays, rows, &mut invalid)?,
            ScoreKind::Clv => clv(&arrays, rows, &mut invalid)?,
        };
        if invalid > 0 {
            self.invalid.fetch_add(invalid, Ordering::Relaxed);
        }
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

/// Model that a model argument must describe.
#[derive(Debug, Clone, Copy)]
enum ModelRole {
    Purchase(PurchaseKind),
    AnyPurchase,
    Spend,
}

impl ScoreUdf {
    fn model_role(&self, index: usize) -> ModelRole {
        match self.kind {
            ScoreKind::PAlive(kind) | ScoreKind::ExpectedPurchases(kind) => {
                ModelRole::Purchase(kind)
            }
            ScoreKind::ExpectedSpend => ModelRole::Spend,
            ScoreKind::Clv if index == 4 => ModelRole::AnyPurchase,
            ScoreKind::Clv => ModelRole::Spend,
        }
    }
}

fn check_model_type(
    name: &str,
    index: usize,
    role: ModelRole,
    data_type: &DataType,
) -> Result<()> {
    let expected: Vec<&str> = match role {
        ModelRole::Purchase(kind) => kind.params().to_vec(),
        ModelRole::AnyPurchase => vec!["r", "alpha"],
        ModelRole::Spend => vec!["p", "q", "v"],
    };
    let DataType::Struct(fields) = data_type else {
        return plan_err!(
            "{name}: argument {} must be a model struct with fields {}, got {data_type}",
            index + 1,
            expected.join(", ")
        );
    };
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|wanted| !fields.iter().any(|f| f.name() == **wanted))
        .collect();
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.into_iter().copied().collect();
        return plan_err!(
            "{name}: argument {} lacks model field(s) {}",
            index + 1,
            missing.join(", ")
        );
    }
    Ok(())
}

/// Model parameters per row, taken from a struct column.
struct ModelColumns {
    fields: Vec<Float64Array>,
    kinds: Option<Vec<Option<PurchaseKind>>>,
    valid: Vec<bool>,
}

impl ModelColumns {
    fn extract(array: &ArrayRef, names: &[&str]) -> Result<Self> {
        let Some(model) = array.as_struct_opt() else {
            return exec_err!("model argument is not a struct");
        };
        let fields = names
            .iter()
            .map(|name| field_as_f64(model, name))
            .collect::<Result<Vec<_>>>()?;
        let valid = (0..model.len()).map(|row| model.is_valid(row)).collect();
        Ok(Self {
            fields,
            kinds: None,
            valid,
        })
    }

    fn params<const N: usize>(&self, row: usize) -> Option<[f64; N]> {
        if !self.valid[row] {
            return None;
        }
        let mut out = [0.0; N];
        for (slot, column) in out.iter_mut().zip(&self.fields) {
            if column.is_null(row) {
                return None;
            }
            *slot = column.value(row);
        }
        Some(out)
    }
}

/// Fails when a struct's `model` field names another purchase model, such as an
/// MBG/NBD fit passed to a BG/NBD score, whose parameters share names but not
/// meaning.
fn check_model_name(kind: PurchaseKind, array: &ArrayRef) -> Result<()> {
    let Some(column) = array
        .as_struct_opt()
        .and_then(|s| s.column_by_name("model"))
    else {
        return Ok(());
    };
    let text = cast(column, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    for name in text.iter().flatten() {
        if name != kind.name() {
            return exec_err!(
                "the model struct is a '{name}' model, not '{}'; use the {name} functions",
                kind.name()
            );
        }
    }
    Ok(())
}

fn field_as_f64(model: &StructArray, name: &str) -> Result<Float64Array> {
    let Some(column) = model.column_by_name(name) else {
        return exec_err!("model struct lacks field '{name}'");
    };
    let column = cast(column, &DataType::Float64)?;
    Ok(column.as_primitive::<Float64Type>().clone())
}

fn numeric(array: &ArrayRef) -> Result<&Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values),
        None => exec_err!("score argument is {}, not DOUBLE", array.data_type()),
    }
}

/// Reads row `row` of a DOUBLE column, `None` when NULL.
fn at(values: &Float64Array, row: usize) -> Option<f64> {
    values.is_valid(row).then(|| values.value(row))
}

/// Reads the statistics of row `row`: `None` when one is NULL, or when they are
/// invalid, which `invalid` counts.
fn customer(
    columns: &[&Float64Array],
    row: usize,
    invalid: &mut u64,
) -> Option<Customer> {
    let (frequency, recency, t) = (
        at(columns[0], row)?,
        at(columns[1], row)?,
        at(columns[2], row)?,
    );
    let checked = Customer::checked(frequency, recency, t);
    if checked.is_none() {
        *invalid += 1;
    }
    checked
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

fn p_alive(
    kind: PurchaseKind,
    arrays: &[ArrayRef],
    rows: usize,
    invalid: &mut u64,
) -> Result<Float64Array> {
    score_purchase(
        kind,
        &arrays[..3],
        &arrays[3],
        rows,
        invalid,
        |model, customer, _| model.p_alive(customer),
    )
}

fn expected_purchases(
    kind: PurchaseKind,
    arrays: &[ArrayRef],
    rows: usize,
    invalid: &mut u64,
) -> Result<Float64Array> {
    let horizon = numeric(&arrays[0])?;
    score_purchase(
        kind,
        &arrays[1..4],
        &arrays[4],
        rows,
        invalid,
        |model, customer, row| {
            let horizon = at(horizon, row)?;
            let if_alive = IfAliveMemo::lookup(model, horizon, customer)?;
            if horizon == 0.0 {
                return Some(0.0);
            }
            expected_from_parts(if_alive, model.p_alive(customer)?)
        },
    )
}

/// Expected purchases of active customers under one model, by horizon,
/// frequency and t.
///
/// The value does not depend on recency, and customers share frequency and t
/// (t takes one value per first-purchase day), so a scored table needs few
/// distinct ones. For BG/NBD and MBG/NBD each is a 2F1 series. Each thread keeps
/// one memo across batches; it starts afresh when the model changes or it is full.
#[derive(Debug, Default)]
struct IfAliveMemo {
    model: Option<(PurchaseKind, [u64; 4])>,
    values: HashMap<[u64; 3], Option<f64>, BuildHasherDefault<RowHasher>>,
}

thread_local! {
    static IF_ALIVE_MEMO: RefCell<IfAliveMemo> = RefCell::new(IfAliveMemo::default());
}

impl IfAliveMemo {
    /// Distinct values kept at most.
    const CAPACITY: usize = 1 << 16;

    /// Returns the memo value, computing it on a miss, on this thread's memo.
    fn lookup(model: &PurchaseModel, horizon: f64, customer: &Customer) -> Option<f64> {
        IF_ALIVE_MEMO.with(|memo| memo.borrow_mut().get(model, horizon, customer))
    }

    fn get(
        &mut self,
        model: &PurchaseModel,
        horizon: f64,
        customer: &Customer,
    ) -> Option<f64> {
        let (kind, params) = model.params();
        let identity = (kind, params.map(f64::to_bits));
        if self.model != Some(identity) || self.values.len() >= Self::CAPACITY {
            self.model = Some(identity);
            self.values.clear();
        }
        let key = [horizon, customer.frequency, customer.t].map(f64::to_bits);
        *self.values.entry(key).or_insert_with(|| {
            model.expected_purchases_if_alive(horizon, customer.frequency, customer.t)
        })
    }
}

/// Expected purchases of active customers under one model at the end of each
/// month of a CLV, by frequency and t.
///
/// A CLV needs one value per month, and one lookup here gives all of them, in
/// place of one [`IfAliveMemo`] lookup per month. Each thread keeps one memo
/// across batches, which starts afresh when the model or the months change, or
/// when it is full.
#[derive(Debug, Default)]
struct SeriesMemo {
    /// Model, month count and time units per month of the values.
    identity: Option<(PurchaseKind, [u64; 4], u32, u64)>,
    /// Per (frequency, t), the value at each month's end; `None` where the model
    /// gives none for some month.
    values: HashMap<[u64; 2], Option<Box<[f64]>>, BuildHasherDefault<RowHasher>>,
}

thread_local! {
    static SERIES_MEMO: RefCell<SeriesMemo> = RefCell::new(SeriesMemo::default());
}

impl SeriesMemo {
    /// Distinct (frequency, t) pairs kept at most.
    const CAPACITY: usize = 1 << 14;

    /// Calls `f` with the values of `customer` at months 1 to `months`, of
    /// `periods` time units each, and computes them on a miss. Returns `None` when
    /// the model gives no value for some month.
    fn with<R>(
        model: &PurchaseModel,
        months: u32,
        periods: f64,
        customer: &Customer,
        f: impl FnOnce(&[f64]) -> Option<R>,
    ) -> Option<R> {
        SERIES_MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            let (kind, params) = model.params();
            let identity = (kind, params.map(f64::to_bits), months, periods.to_bits());
            if memo.identity != Some(identity) || memo.values.len() >= Self::CAPACITY {
                memo.identity = Some(identity);
                memo.values.clear();
            }
            let key = [customer.frequency, customer.t].map(f64::to_bits);
            let series = memo.values.entry(key).or_insert_with(|| {
                (1..=months)
                    .map(|month| {
                        model.expected_purchases_if_alive(
                            f64::from(month) * periods,
                            customer.frequency,
                            customer.t,
                        )
                    })
                    .collect::<Option<Box<[f64]>>>()
            });
            f(series.as_deref()?)
        })
    }
}

/// Scores every row with a purchase model: `stats` are the frequency, recency and
/// t columns, `model` the struct column, and `score` the quantity per row.
fn score_purchase(
    kind: PurchaseKind,
    stats: &[ArrayRef],
    model: &ArrayRef,
    rows: usize,
    invalid: &mut u64,
    score: impl Fn(&PurchaseModel, &Customer, usize) -> Option<f64>,
) -> Result<Float64Array> {
    let stats: Vec<&Float64Array> = stats.iter().map(numeric).collect::<Result<_>>()?;
    let params = ModelColumns::extract(model, &kind.params())?;
    check_model_name(kind, model)?;
    let mut out = Float64Builder::with_capacity(rows);
    for row in 0..rows {
        let model = match params.params::<4>(row) {
            Some(values) => Some(
                PurchaseModel::new(kind, values)
                    .ok_or_else(|| invalid_params(&kind.params(), &values))?,
            ),
            None => None,
        };
        let value = model
            .zip(customer(&stats, row, invalid))
            .and_then(|(model, customer)| score(&model, &customer, row));
        out.append_option(finite(value));
    }
    Ok(out.finish())
}

/// Returns the error for model parameters that are not all positive and finite:
/// a fit never returns such values, so they come from a mistyped literal.
fn invalid_params(names: &[&str], values: &[f64]) -> datafusion::error::DataFusionError {
    let (name, value) = names
        .iter()
        .zip(values)
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        .map_or(("?", f64::NAN), |(n, v)| (*n, *v));
    datafusion::error::DataFusionError::Execution(format!(
        "model parameter '{name}' is {value}, and every model parameter must be \
         positive and finite"
    ))
}

/// Returns the Gamma-Gamma model of a row: `None` for a NULL model, an error for
/// parameters that are not all positive and finite.
fn spend_model(params: Option<[f64; 3]>) -> Result<Option<GammaGamma>> {
    let Some([p, q, v]) = params else {
        return Ok(None);
    };
    if [p, q, v].iter().all(|x| x.is_finite() && *x > 0.0) {
        Ok(Some(GammaGamma::new(p, q, v)))
    } else {
        Err(invalid_params(&["p", "q", "v"], &[p, q, v]))
    }
}

/// Returns true for statistics Gamma-Gamma can score: frequency a whole number
/// >= 0, and mean spend > 0 when frequency > 0.
fn is_valid_spend(frequency: f64, monetary: f64) -> bool {
    frequency.is_finite()
        && frequency >= 0.0
        && frequency == frequency.floor()
        && monetary.is_finite()
        && (frequency == 0.0 || monetary > 0.0)
}

fn expected_spend(
    arrays: &[ArrayRef],
    rows: usize,
    invalid: &mut u64,
) -> Result<Float64Array> {
    let frequency = numeric(&arrays[0])?;
    let monetary = numeric(&arrays[1])?;
    let model = ModelColumns::extract(&arrays[2], &["p", "q", "v"])?;
    let mut out = Float64Builder::with_capacity(rows);
    for row in 0..rows {
        let gg = spend_model(model.params::<3>(row))?;
        let value = (|| {
            let (frequency, monetary) = (at(frequency, row)?, at(monetary, row)?);
            if !is_valid_spend(frequency, monetary) {
                *invalid += 1;
                return None;
            }
            gg?.expected_spend(frequency, monetary)
        })();
        out.append_option(finite(value));
    }
    Ok(out.finish())
}

/// Finds the purchase model of each row of a struct column: its `model` field when
/// present, else BG/NBD for fields a and b and Pareto/NBD for s and beta.
fn purchase_models(array: &ArrayRef) -> Result<ModelColumns> {
    let Some(model) = array.as_struct_opt() else {
        return exec_err!("purchase model argument is not a struct");
    };
    let has = |name: &str| model.column_by_name(name).is_some();
    let default_kind = if has("s") && has("beta") {
        Some(PurchaseKind::ParetoNbd)
    } else if has("a") && has("b") {
        Some(PurchaseKind::BgNbd)
    } else {
        None
    };
    let names: [&str; 4] = match default_kind {
        Some(kind) => kind.params(),
        None => return exec_err!("purchase model needs fields a and b, or s and beta"),
    };
    let mut columns = ModelColumns::extract(array, &names)?;
    let kinds = match model.column_by_name("model") {
        Some(column) => {
            let text = cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            (0..model.len())
                .map(|row| {
                    if text.is_null(row) {
                        default_kind
                    } else {
                        PurchaseKind::from_name(text.value(row))
                            .filter(|kind| kind.params() == names)
                    }
                })
                .collect()
        }
        None => vec![default_kind; model.len()],
    };
    columns.kinds = Some(kinds);
    Ok(columns)
}

/// Sums, over months 1 to `months`, the expected spend times the expected
/// purchases in that month, discounted by (1 + rate)^month.
fn clv(arrays: &[ArrayRef], rows: usize, invalid: &mut u64) -> Result<Float64Array> {
    let stats: Vec<&Float64Array> =
        arrays[..3].iter().map(numeric).collect::<Result<_>>()?;
    let monetary = numeric(&arrays[3])?;
    let purchase = purchase_models(&arrays[4])?;
    let spend = ModelColumns::extract(&arrays[5], &["p", "q", "v"])?;
    let months = numeric(&arrays[6])?;
    let rate = numeric(&arrays[7])?;
    let periods = numeric(&arrays[8])?;
    let kinds = purchase.kinds.clone().unwrap_or_default();
    let mut out = Float64Builder::with_capacity(rows);
    for row in 0..rows {
        let gg = spend_model(spend.params::<3>(row))?;
        let model = match (kinds.get(row).copied().flatten(), purchase.params::<4>(row)) {
            (Some(kind), Some(values)) => Some(
                PurchaseModel::new(kind, values)
                    .ok_or_else(|| invalid_params(&kind.params(), &values))?,
            ),
            _ => None,
        };
        let value = (|| {
            let customer = customer(&stats, row, invalid)?;
            let monetary = at(monetary, row)?;
            if !is_valid_spend(customer.frequency, monetary) {
                *invalid += 1;
                return None;
            }
            let model = model?;
            let per_purchase = gg?.expected_spend(customer.frequency, monetary)?;
            let months = at(months, row)?;
            let rate = at(rate, row)?;
            let periods = at(periods, row)?;
            let valid = months >= 0.0
                && months == months.floor()
                && months <= 1200.0
                && rate > -1.0
                && rate.is_finite()
                && periods > 0.0
                && periods.is_finite();
            if !valid {
                return None;
            }
            let p_alive = model.p_alive(&customer)?;
            SeriesMemo::with(&model, months as u32, periods, &customer, |series| {
                let mut total = 0.0;
                let mut previous = 0.0;
                for (month, if_alive) in (1..).zip(series) {
                    let cumulative = expected_from_parts(*if_alive, p_alive)?;
                    let discount = (1.0 + rate).powi(month);
                    total += per_purchase * (cumulative - previous) / discount;
                    previous = cumulative;
                }
                Some(total)
            })
        })();
        out.append_option(finite(value));
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The memo gives each month's value as computed directly, and starts afresh
    /// when the months or the model change on the same thread.
    #[test]
    fn series_memo_follows_months_and_model() {
        let first = PurchaseModel::new(PurchaseKind::BgNbd, [0.243, 4.414, 0.793, 2.426])
            .unwrap();
        let second =
            PurchaseModel::new(PurchaseKind::BgNbd, [0.5, 4.0, 0.8, 2.0]).unwrap();
        let customer = Customer::checked(2.0, 30.43, 38.86).unwrap();
        let direct = |model: &PurchaseModel, months: u32| -> Vec<f64> {
            (1..=months)
                .map(|month| {
                    model
                        .expected_purchases_if_alive(f64::from(month) * 4.345, 2.0, 38.86)
                        .unwrap()
                })
                .collect()
        };
        let memo = |model: &PurchaseModel, months: u32| -> Vec<f64> {
            SeriesMemo::with(model, months, 4.345, &customer, |series| {
                Some(series.to_vec())
            })
            .unwrap()
        };
        assert_eq!(memo(&first, 12), direct(&first, 12));
        assert_eq!(memo(&first, 3), direct(&first, 3));
        assert_eq!(memo(&second, 3), direct(&second, 3));
        assert_ne!(direct(&first, 3), direct(&second, 3));
        assert_eq!(memo(&first, 3), direct(&first, 3));
    }
}
