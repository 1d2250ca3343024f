//! `rfm_segment(r_score, f_score, m_score)`: the named RFM segment of a customer.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Int64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::rfm_codes::SEGMENT_BY_CODE;
use super::{FunctionDoc, FunctionKind};

pub(super) const DOC: FunctionDoc = FunctionDoc {
    name: "rfm_segment",
    kind: FunctionKind::Scalar,
    signature: "rfm_segment(r_score BIGINT, f_score BIGINT, m_score BIGINT) -> VARCHAR",
    summary: "one of 11 named segments for scores 1 to 5 (5 best, for recency most \
              recent); NULL when a score is NULL or outside 1 to 5",
    example: "rfm_segment(5, 5, 4) = 'Champions'",
};

/// The `rfm_segment` scalar function.
///
/// Looks the code `r f m` up in the 125-code map of [`super::rfm_codes`]. Any
/// integer type is accepted and widened to `BIGINT`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RfmSegment {
    signature: Signature,
}

impl RfmSegment {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::uniform(
                3,
                vec![DataType::Int64],
                Volatility::Immutable,
            ),
        }
    }
}

impl Default for RfmSegment {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for RfmSegment {
    fn name(&self) -> &str {
        DOC.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [r, f, m] = arrays.as_slice() else {
            return datafusion::common::exec_err!(
                "rfm_segment takes 3 arguments, got {}",
                arrays.len()
            );
        };
        Ok(ColumnarValue::Array(segments(r, f, m)))
    }
}

fn segments(r: &ArrayRef, f: &ArrayRef, m: &ArrayRef) -> ArrayRef {
    let (r, f, m) = (
        r.as_primitive::<Int64Type>(),
        f.as_primitive::<Int64Type>(),
        m.as_primitive::<Int64Type>(),
    );
    let mut builder = StringBuilder::with_capacity(r.len(), r.len() * 12);
    for row in 0..r.len() {
        let score = |array: &arrow::array::Int64Array| {
            (array.is_valid(row)).then(|| array.value(row))
        };
        match (score(r), score(f), score(m)) {
            (Some(r), Some(f), Some(m)) => builder.append_option(segment(r, f, m)),
            _ => builder.append_null(),
        }
    }
    Arc::new(builder.finish())
}

/// Returns the segment of scores `r`, `f`, `m`, or `None` when one is outside 1 to 5.
pub fn segment(r: i64, f: i64, m: i64) -> Option<&'static str> {
    let in_range = |score: i64| (1..=5).contains(&score);
    if !(in_range(r) && in_range(f) && in_range(m)) {
        return None;
    }
    let index = (r - 1) * 25 + (f - 1) * 5 + (m - 1);
    Some(SEGMENT_BY_CODE[index as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    #[test]
    fn table_matches_source_csv() {
        let csv = include_str!("../../data/rfm/segments_by_rfm_code.csv");
        let mut count = 0;
        for line in csv.lines().skip(1) {
            let (code, name) = line.split_once(',').unwrap();
            let digits: Vec<i64> = code
                .chars()
                .map(|c| c.to_digit(10).unwrap() as i64)
                .collect();
            assert_eq!(
                segment(digits[0], digits[1], digits[2]),
                Some(name),
                "code {code}"
            );
            count += 1;
        }
        assert_eq!(count, 125);
    }

    #[test]
    fn published_examples() {
        for code in [555, 554, 544, 545, 454, 455, 445] {
            assert_eq!(
                segment(code / 100, code / 10 % 10, code % 10),
                Some("Champions")
            );
        }
        for code in [111, 112, 121, 131, 141, 151] {
            assert_eq!(segment(code / 100, code / 10 % 10, code % 10), Some("Lost"));
        }
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(segment(0, 3, 3), None);
        assert_eq!(segment(3, 6, 3), None);
        assert_eq!(segment(3, 3, -1), None);
    }

    #[test]
    fn null_score_gives_null() {
        let r: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), None, Some(9)]));
        let f: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(1), Some(1)]));
        let m: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(1), Some(1)]));
        let out = segments(&r, &f, &m);
        let out = out.as_string::<i32>();
        assert_eq!(out.value(0), "Champions");
        assert!(out.is_null(1));
        assert!(out.is_null(2));
    }
}
