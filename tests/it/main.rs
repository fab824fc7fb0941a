//! Every integration test of the `strata` crate, in one binary: one module per area,
//! shared support in `common` (and the Debian and wheel fixture builders).
//! `cargo test --test it AREA::` runs one area.
#![allow(dead_code)]

mod common;
mod debs_support;
mod wheels_support;

mod airgap;
mod arm64_real;
mod audit;
mod build;
mod bytecode;
mod ca_certificates;
mod cache;
mod cli;
mod copy;
mod debs;
mod debs_real;
mod diff;
mod docs;
mod fuzz;
mod gpu_embed;
mod hostile;
mod inspect;
mod integrity;
mod locked;
mod merged_usr;
mod multi_platform;
mod platform_checks;
mod relock;
mod sbom;
mod ssh;
mod verifier_arm64;
mod verifier_dist;
mod wheels;
mod wheels_build;
