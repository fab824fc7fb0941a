//! Strata: a declarative, reproducible OCI image compiler.
#![deny(missing_docs)]
// Errors carry paths, digests and hints for the user; they are built on cold
// paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod compress;
pub mod digest;
pub mod tarwriter;
pub mod tree;
pub mod spec;
pub mod fetch;
pub mod report;
pub mod store;
pub mod archive;
pub mod sources;
pub mod layer;
pub mod image;
pub mod build;
pub mod pool;
pub mod config;
pub mod mirror;
pub mod diff;
pub mod audit;
pub mod sbom;
pub mod lock;
pub mod registry;
pub mod cuda;
