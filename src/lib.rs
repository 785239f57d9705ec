//! personalize-braze: an Amazon Personalize recommendation endpoint for Braze Connected Content.
//!
//! The request flow lives in [`service`]; it talks to two ports, [`recommender::Recommender`]
//! (ranked item ids) and [`catalog::Catalog`] (item metadata), and never sees an AWS type.
//! [`api`] turns HTTP into service calls and service results into the contract Braze sees.
//! [`startup`] builds all of it from a [`config::Config`]; nothing below it reads the config.
//! [`sync`] is the batch path: Personalize batch inference output into Braze user attributes.

pub mod api;
pub mod catalog;
pub mod config;
pub mod dataset;
pub mod encoding;
pub mod evaluation;
pub mod item;
pub mod limits;
pub mod metrics;
pub mod recommender;
pub mod service;
pub mod startup;
pub mod sync;
pub mod upstream;
