//! Every SQL function cra adds to DataFusion, behind one [`register`] entry point.
//!
//! Local runs, `cra validate` and cluster executors all call [`register`], so a
//! function that works in one place works in all of them. [`catalogue`] lists the
//! same functions with their signatures and docs for `cra functions`.

mod rfm;
mod rfm_codes;

use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::ScalarUDF;

pub use rfm::RfmSegment;
pub use rfm_codes::SEGMENTS as RFM_SEGMENTS;

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

/// Registers every cra SQL function in `registry`.
///
/// Fails when a name is already taken, because registering a name DataFusion
/// already has would silently replace a built-in function.
pub fn register(registry: &mut dyn FunctionRegistry) -> datafusion::error::Result<()> {
    for udf in scalar_functions() {
        let name = udf.name().to_string();
        if registry.udf(&name).is_ok() {
            return datafusion::common::plan_err!(
                "SQL function '{name}' is already registered; cra will not replace it"
            );
        }
        registry.register_udf(udf)?;
    }
    Ok(())
}

fn scalar_functions() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::from(RfmSegment::new()))]
}

/// Lists the SQL functions cra adds, in the order `cra functions` prints them.
pub fn catalogue() -> Vec<FunctionDoc> {
    vec![rfm::DOC]
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[test]
    fn catalogue_lists_every_registered_function() {
        let registered: Vec<String> = scalar_functions()
            .iter()
            .map(|udf| udf.name().to_string())
            .collect();
        let documented: Vec<String> =
            catalogue().iter().map(|doc| doc.name.to_string()).collect();
        assert_eq!(registered, documented);
    }

    #[test]
    fn register_twice_fails() {
        let mut state = SessionContext::new().state();
        register(&mut state).unwrap();
        assert!(register(&mut state).is_err());
    }
}
