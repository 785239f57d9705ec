//! For tests and benches only, never a dependency of a product: the services nothing emulates,
//! each speaking the real wire protocol, and the plumbing to drive real processes.
//!
//! - [`fake_personalize`]: Personalize's runtime and events APIs as the SDK sees them.
//! - [`fake_personalize_control`]: Personalize's control plane (datasets to campaigns), every
//!   request checked against AWS's model of the service ([`service_model`]).
//! - [`fake_braze`]: Braze's `/users/track`, with its limits, errors and rate-limit headers;
//!   [`fake_braze_catalogs`]: its Catalogs API.
//! - [`lambda_emulator`]: the Lambda Runtime API a function's `bootstrap` polls.
//! - [`emf`]: reads the request lines' CloudWatch Embedded Metric Format back.
//! - [`http`]: a plain HTTP client for tests; [`binaries`]: the workspace's built binaries.

pub mod binaries;
pub mod emf;
pub mod fake_braze;
pub mod fake_braze_catalogs;
pub mod fake_personalize;
pub mod fake_personalize_control;
pub mod http;
pub mod lambda_emulator;
pub mod service_model;
