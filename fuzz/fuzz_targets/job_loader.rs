//! Fuzzes the job loader: any bytes as a job file, parsed and resolved.
//!
//! The loader's modules are compiled here from `../src`, so their `crate::`
//! paths resolve to this file's modules. Resolution reads the files a job names;
//! the target runs in a scratch folder so relative paths find nothing of value.

#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../src/error.rs"]
mod error;
#[path = "../../src/job/mod.rs"]
mod job;
#[path = "../../src/redact.rs"]
mod redact;
#[path = "../../src/storage/location.rs"]
mod storage;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Every input must end in a result, never a panic; both results are fine.
    let _ = job::load::load_bytes("fuzz/job.yaml", data.to_vec(), &[]);
});
