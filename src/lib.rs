//! The Lambda function: the endpoint Braze's Connected Content calls.
//!
//! This crate is only the composition root. [`config`] reads the environment once; [`startup`]
//! builds the app it describes from the other crates: the request flow and its ports
//! (`personalize_braze_core`), their AWS adapters (`personalize_braze_aws`) or the embedded model
//! (`personalize_braze_local`), behind the HTTP contract (`personalize_braze_api`). Nothing below
//! this crate reads the configuration.

pub mod config;
pub mod startup;
