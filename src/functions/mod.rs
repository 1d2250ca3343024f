//! Every SQL function cra adds to DataFusion, behind one [`register`] entry point.
//!
//! Local runs, `cra validate` and cluster executors all call [`register`], so a
//! function that works in one place works in all of them. [`catalogue`] lists the
//! same functions with their signatures and docs for `cra functions`.

mod catalogue;
pub mod fit;
pub(crate) mod likelihood;
pub mod models;
pub mod optimize;
mod rfm;
mod rfm_codes;
pub mod score;
pub mod special;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use fit::{FitKind, FitUdf};
use models::PurchaseKind;
pub use rfm::RfmSegment;
pub use rfm_codes::SEGMENTS as RFM_SEGMENTS;
use score::{ScoreKind, ScoreUdf};

/// Kind of a SQL function in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// Called once per row.
    Scalar,
    /// Called once per group.
    Aggregate,
}

/// The documentation of one SQL function, as `cra functions` prints it.
#[derive(Debug, Clone)]
pub struct FunctionDoc {
    /// SQL name.
    pub name: &'static str,
    /// Scalar or aggregate.
    pub kind: FunctionKind,
    /// Argument list with types and the return type.
    pub signature: &'static str,
    /// One line: what the function returns.
    pub summary: &'static str,
    /// A SQL call that works in a stage.
    pub example: &'static str,
}

/// Counts, per score function, the rows whose statistics were invalid and so
/// scored NULL.
#[derive(Debug, Clone)]
pub struct ScoreCounters {
    counters: Vec<(&'static str, Arc<AtomicU64>)>,
}

impl Default for ScoreCounters {
    fn default() -> Self {
        let counters = score_kinds()
            .into_iter()
            .map(|kind| (kind.function_name(), Arc::new(AtomicU64::new(0))))
            .collect();
        Self { counters }
    }
}

impl ScoreCounters {
    fn counter(&self, kind: ScoreKind) -> Arc<AtomicU64> {
        self.counters
            .iter()
            .find(|(name, _)| *name == kind.function_name())
            .map(|(_, counter)| Arc::clone(counter))
            .unwrap_or_default()
    }

    /// Returns the counts that are not zero, by function name, and sets all to zero.
    pub fn take(&self) -> BTreeMap<String, u64> {
        self.counters
            .iter()
            .map(|(name, counter)| (name.to_string(), counter.swap(0, Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

/// Registers every cra SQL function in `registry`, with counters that are not reported.
///
/// Fails when a name is already taken, because registering a name DataFusion
/// already has would silently replace a built-in function.
pub fn register(registry: &mut dyn FunctionRegistry) -> datafusion::error::Result<()> {
    register_counted(registry, &ScoreCounters::default())
}

/// Registers every cra SQL function in `registry`; score functions count invalid
/// rows in `counters`.
pub fn register_counted(
    registry: &mut dyn FunctionRegistry,
    counters: &ScoreCounters,
) -> datafusion::error::Result<()> {
    for udf in scalar_functions(counters) {
        let name = udf.name().to_string();
        if registry.udf(&name).is_ok() {
            return datafusion::common::plan_err!(
                "SQL function '{name}' is already registered; cra will not replace it"
            );
        }
        registry.register_udf(udf)?;
    }
    for udaf in aggregate_functions() {
        let name = udaf.name().to_string();
        if registry.udaf(&name).is_ok() {
            return datafusion::common::plan_err!(
                "SQL function '{name}' is already registered; cra will not replace it"
            );
        }
        registry.register_udaf(udaf)?;
    }
    Ok(())
}

const PURCHASE_KINDS: [PurchaseKind; 3] = [
    PurchaseKind::BgNbd,
    PurchaseKind::ParetoNbd,
    PurchaseKind::MbgNbd,
];

fn score_kinds() -> Vec<ScoreKind> {
    let mut kinds = Vec::new();
    for kind in PURCHASE_KINDS {
        kinds.push(ScoreKind::PAlive(kind));
        kinds.push(ScoreKind::ExpectedPurchases(kind));
    }
    kinds.push(ScoreKind::ExpectedSpend);
    kinds.push(ScoreKind::Clv);
    kinds
}

fn scalar_functions(counters: &ScoreCounters) -> Vec<Arc<ScalarUDF>> {
    let mut functions: Vec<Arc<ScalarUDF>> = score_kinds()
        .into_iter()
        .map(|kind| {
            Arc::new(ScalarUDF::from(ScoreUdf::new(kind, counters.counter(kind))))
        })
        .collect();
    functions.push(Arc::new(ScalarUDF::from(RfmSegment::new())));
    functions
}

fn aggregate_functions() -> Vec<Arc<AggregateUDF>> {
    PURCHASE_KINDS
        .into_iter()
        .map(FitKind::Purchase)
        .chain([FitKind::GammaGamma])
        .map(|kind| Arc::new(AggregateUDF::from(FitUdf::new(kind))))
        .collect()
}

/// Lists the SQL functions cra adds, in the order `cra functions` prints them.
pub fn catalogue() -> Vec<FunctionDoc> {
    let mut docs = catalogue::DOCS.to_vec();
    docs.push(rfm::DOC);
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn catalogue_lists_every_registered_function() {
        let mut registered: Vec<String> = scalar_functions(&ScoreCounters::default())
            .iter()
            .map(|udf| udf.name().to_string())
            .chain(
                aggregate_functions()
                    .iter()
                    .map(|udaf| udaf.name().to_string()),
            )
            .collect();
        let mut documented: Vec<String> =
            catalogue().iter().map(|doc| doc.name.to_string()).collect();
        registered.sort();
        documented.sort();
        assert_eq!(registered, documented);
    }

    #[test]
    fn register_twice_fails() {
        let mut state = SessionContext::new().state();
        register(&mut state).unwrap();
        assert!(register(&mut state).is_err());
    }
}
