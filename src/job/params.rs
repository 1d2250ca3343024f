//! Parameter values: parsing by declared type and binding as DataFusion scalars.

use chrono::NaiveDate;

use super::spec::{ParamType, ScalarSpec};

/// A parameter value of its declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// `string` parameter.
    String(String),
    /// `int` parameter.
    Int(i64),
    /// `float` parameter.
    Float(f64),
    /// `date` parameter.
    Date(NaiveDate),
    /// `bool` parameter.
    Bool(bool),
}

impl ParamValue {
    /// Parses a `--param` value by the declared type.
    pub fn parse(param_type: ParamType, text: &str) -> Result<Self, String> {
        match param_type {
            ParamType::String => Ok(ParamValue::String(text.to_string())),
            ParamType::Int => text
                .trim()
                .parse()
                .map(ParamValue::Int)
                .map_err(|_| format!("'{text}' is not an int")),
            ParamType::Float => parse_float(text.trim()).map(ParamValue::Float),
            ParamType::Date => parse_date(text.trim()).map(ParamValue::Date),
            ParamType::Bool => match text.trim() {
                "true" => Ok(ParamValue::Bool(true)),
                "false" => Ok(ParamValue::Bool(false)),
                _ => Err(format!("'{text}' is not a bool (true or false)")),
            },
        }
    }

    /// Checks a YAML default against the declared type.
    ///
    /// Strings are never coerced to numbers or booleans, and numbers are never
    /// taken as strings, so a default always reads as what it is.
    pub fn from_spec(param_type: ParamType, spec: &ScalarSpec) -> Result<Self, String> {
        match (param_type, spec) {
            (ParamType::String, ScalarSpec::String(text)) => {
                Ok(ParamValue::String(text.clone()))
            }
            (ParamType::Int, ScalarSpec::Int(value)) => Ok(ParamValue::Int(*value)),
            (ParamType::Float, ScalarSpec::Int(value)) => {
                Ok(ParamValue::Float(*value as f64))
            }
            (ParamType::Float, ScalarSpec::Float(value)) if value.is_finite() => {
                Ok(ParamValue::Float(*value))
            }
            (ParamType::Date, ScalarSpec::String(text)) => {
                parse_date(text).map(ParamValue::Date)
            }
            (ParamType::Bool, ScalarSpec::Bool(value)) => Ok(ParamValue::Bool(*value)),
            (expected, found) => Err(format!(
                "default {} does not match type {}",
                describe_scalar(found),
                expected.name()
            )),
        }
    }

    /// Returns the value as JSON, for manifests and summaries.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ParamValue::String(text) => serde_json::Value::from(text.as_str()),
            ParamValue::Int(value) => serde_json::Value::from(*value),
            ParamValue::Float(value) => serde_json::Value::from(*value),
            ParamValue::Date(date) => serde_json::Value::from(date.to_string()),
            ParamValue::Bool(value) => serde_json::Value::from(*value),
        }
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::String(text) => write!(f, "{text:?}"),
            ParamValue::Int(value) => write!(f, "{value}"),
            ParamValue::Float(value) => write!(f, "{value}"),
            ParamValue::Date(date) => write!(f, "{date}"),
            ParamValue::Bool(value) => write!(f, "{value}"),
        }
    }
}

fn parse_float(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(format!("'{text}' is not a finite float")),
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a date (expected YYYY-MM-DD)"))
}

/// Returns the days from 1970-01-01 to `date`, as Arrow's Date32 counts them.
pub fn days_since_epoch(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a valid date");
    (date - epoch).num_days() as i32
}

fn describe_scalar(spec: &ScalarSpec) -> String {
    match spec {
        ScalarSpec::Bool(value) => format!("{value} (a bool)"),
        ScalarSpec::Int(value) => format!("{value} (an int)"),
        ScalarSpec::Float(value) => format!("{value} (a float)"),
        ScalarSpec::String(text) => format!("'{text}' (a string)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_by_declared_type() {
        assert_eq!(
            ParamValue::parse(ParamType::Int, "52"),
            Ok(ParamValue::Int(52))
        );
        assert_eq!(
            ParamValue::parse(ParamType::Date, "1997-09-30"),
            Ok(ParamValue::Date(
                NaiveDate::from_ymd_opt(1997, 9, 30).unwrap()
            ))
        );
        assert_eq!(
            ParamValue::parse(ParamType::Bool, "true"),
            Ok(ParamValue::Bool(true))
        );
        assert!(ParamValue::parse(ParamType::Int, "5.5").is_err());
        assert!(ParamValue::parse(ParamType::Float, "NaN").is_err());
        assert!(ParamValue::parse(ParamType::Date, "1997-02-30").is_err());
        assert!(ParamValue::parse(ParamType::Bool, "yes").is_err());
    }

    #[test]
    fn string_value_keeps_sql_text() {
        let text = "x'; DROP TABLE t; --";
        let value = ParamValue::parse(ParamType::String, text).unwrap();
        assert_eq!(value, ParamValue::String(text.to_string()));
    }

    #[test]
    fn default_of_wrong_type_rejected() {
        assert!(
            ParamValue::from_spec(ParamType::Int, &ScalarSpec::String("x".into()))
                .is_err()
        );
        assert!(ParamValue::from_spec(ParamType::String, &ScalarSpec::Int(5)).is_err());
        assert!(ParamValue::from_spec(ParamType::Bool, &ScalarSpec::Int(1)).is_err());
        assert_eq!(
            ParamValue::from_spec(ParamType::Float, &ScalarSpec::Int(2)),
            Ok(ParamValue::Float(2.0))
        );
    }

    #[test]
    fn date_counts_days_since_epoch() {
        let date = NaiveDate::from_ymd_opt(1970, 1, 11).unwrap();
        assert_eq!(days_since_epoch(date), 10);
    }
}
