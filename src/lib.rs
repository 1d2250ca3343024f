//! cra runs customer relationship analytics jobs on Apache DataFusion.
//!
//! A job file (YAML) names Parquet or CSV inputs, SQL stages and Parquet outputs.
//! [`job`] turns the file into a resolved [`job::JobPlan`], [`engine`] registers the
//! inputs and stages in a DataFusion session with cra's SQL functions from
//! [`functions`], and [`publish`] writes every output to staging and commits them
//! only when all of them are complete. [`cli`] maps each outcome to an exit code.

#![warn(missing_docs)]

pub mod cli;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod functions;
pub mod generate;
pub mod job;
pub mod logging;
pub mod progress;
pub mod publish;
pub mod redact;
pub mod storage;
pub mod summary;

pub use error::{Error, Result};

/// The cra version recorded in manifests and printed by `cra --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
