//! Strata: a declarative, reproducible OCI image compiler.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Errors carry paths, digests and hints for the user; they are built on cold
// paths only, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod archive;
pub mod atomic;
pub mod audit;
pub mod build;
pub mod cache;
pub mod compress;
pub mod config;
pub mod cuda;
pub mod diff;
pub mod digest;
pub mod encoding;
pub mod error;
pub mod fetch;
pub mod hostfs;
pub mod image;
pub mod layer;
pub mod lock;
pub mod lockfile;
pub mod mirror;
pub mod net;
pub mod oci;
pub mod platform;
pub mod pool;
pub mod provenance;
pub mod registry;
pub mod report;
pub mod sbom;
pub mod sign;
pub mod sources;
pub mod spec;
pub mod store;
pub mod tarwriter;
pub mod time;
pub mod transport;
pub mod tree;
pub mod units;
