//! A guard on partition columns: DataFusion writes a NULL partition value as an
//! empty or zero folder value (`g=`, `k=0`), so a reader would get a value the
//! table never held. Outputs pass each partition column through
//! `cra_partition_value(column, 'name')`, which returns the column unchanged and
//! fails the run on the first NULL.

use arrow::datatypes::DataType;
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;

/// SQL name of the guard; not listed by `cra functions`.
pub const NAME: &str = "cra_partition_value";

/// The guard function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PartitionValue {
    signature: Signature,
}

impl PartitionValue {
    /// Creates the guard.
    pub fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for PartitionValue {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for PartitionValue {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(data_type) => Ok(data_type.clone()),
            None => plan_err!("{NAME} takes a column and its name"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let column = match args.args.as_slice() {
            [ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))), ..] => name.clone(),
            [_, ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))] => name.clone(),
            _ => "?".to_string(),
        };
        let value = args.args.into_iter().next();
        let nulls = match &value {
            Some(ColumnarValue::Array(array)) => array.null_count(),
            Some(ColumnarValue::Scalar(scalar)) => usize::from(scalar.is_null()),
            None => 0,
        };
        if nulls > 0 {
            return exec_err!(
                "partition column '{column}' is NULL in {nulls} rows of a batch, and a \
                 partition folder cannot hold NULL"
            );
        }
        match value {
            Some(value) => Ok(value),
            None => exec_err!("{NAME} takes a column and its name"),
        }
    }
}
