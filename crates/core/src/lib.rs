//! The domain of personalize-braze, free of AWS and HTTP.
//!
//! - [`item`]: the item model and the answer's fields; [`dataset`]: Personalize-format CSV files,
//!   read by [`rules`], Personalize's rules for dataset files and schemas.
//! - [`recommender::Recommender`] (ranked ids) and [`catalog::Catalog`] (item metadata): the two
//!   ports every adapter implements, in the AWS crate, the local model and the tests.
//! - [`service`]: the request flow over the ports: ask, join the catalog, diversify, promote;
//!   [`fallback`]: what it answers from memory when the recommender cannot.
//! - [`limits`], [`upstream`] (what can go wrong upstream) and [`encoding`] (shared rules).

pub mod catalog;
pub mod dataset;
pub mod encoding;
pub mod env;
pub mod fallback;
pub mod item;
pub mod join;
pub mod limits;
pub mod recommender;
pub mod rules;
pub mod service;
pub mod upstream;
