//! Job files: the YAML types, loading with source positions, and resolution.
//!
//! [`load`] reads a job file and returns a [`JobPlan`]: the YAML is parsed strictly
//! into [`spec`] types, then [`plan::resolve`] types the parameters, resolves paths
//! against the job file's folder and reads the SQL files. Every failure here exits
//! with code 2, before any data is read.

pub mod load;
pub mod params;
pub mod plan;
pub mod spec;
mod storage;

pub use load::load;
pub use params::ParamValue;
pub use plan::{
    CheckKind, CheckPlan, EnginePlan, InputPlan, JobPlan, OutputPlan, ParamPlan, SortKey,
    SqlOrigin, StagePlan,
};
