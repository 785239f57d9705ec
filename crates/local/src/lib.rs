//! The embedded model: local mode's recommender and catalog, trained from Personalize-format CSV
//! files at start, so the same service runs with no AWS account.
//!
//! - [`cooccurrence`]: the model, item co-occurrence with [`factors`] blended in; [`tuning`]:
//!   trains it as the data at hand wants; [`embedded`]: the `Recommender` over it, with
//!   [`filter`]s and promotions; [`popularity`]: the baseline.
//! - [`file_catalog`]: the `Catalog` over the items CSV.
//! - [`evaluation`]: offline scores on a held-out split (`evaluate`).

pub mod cooccurrence;
pub mod embedded;
pub mod evaluation;
pub mod factors;
pub mod file_catalog;
pub mod filter;
pub mod popularity;
pub mod tuning;
