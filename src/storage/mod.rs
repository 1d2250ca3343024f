//! Object stores by URL: the local file system and S3-compatible buckets.
//!
//! [`location`] contains the resolved locations and settings, with no network code,
//! so the job loader can use it alone. [`Stores`] builds one client per bucket
//! a job names and turns store errors into messages that name the cause.

mod location;
mod s3;

pub use location::*;
pub use s3::{
    RemoteFile, Stores, describe_store_error, describe_store_error_in_text,
    find_store_error,
};
