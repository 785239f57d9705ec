//! The `Catalog` port: item metadata for a batch of ids. Adapters: `dynamodb` (BatchGetItem),
//! `file` (local mode's items CSV), and `cache` in front of either.

pub mod cache;
pub(crate) mod lru;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::item::Item;
use crate::upstream::UpstreamError;

/// Where item metadata comes from.
pub trait Catalog: Send + Sync + 'static {
    /// Metadata for `ids`. Ids the catalog lacks are absent from the map; that is not an error.
    /// Work that would end after `deadline` should give up instead.
    fn items(
        &self,
        ids: &[String],
        deadline: Instant,
    ) -> impl Future<Output = Result<HashMap<String, Arc<Item>>, UpstreamError>> + Send;

    /// `items`, adding to `counts` how many ids a cache answered and how many it fetched. Only a
    /// cache counts; any other catalog leaves `counts` alone.
    fn items_counted(
        &self,
        ids: &[String],
        deadline: Instant,
        counts: &mut CacheCounts,
    ) -> impl Future<Output = Result<HashMap<String, Arc<Item>>, UpstreamError>> + Send {
        let _ = counts;
        self.items(ids, deadline)
    }
}

/// One request's use of the item cache, for its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCounts {
    /// Ids answered from the cache: an item, or "the catalog lacks it".
    pub hits: usize,
    /// Ids the cache had to fetch, or wait for another request's fetch of.
    pub misses: usize,
}

/// The catalog of a deployment whose items come with the recommender's answer
/// (`ITEM_METADATA_SOURCE=personalize`) or that returns no items at all (events only).
/// The service never asks it; if it did, that is a deployment bug, said loudly.
pub struct NoCatalog;

impl Catalog for NoCatalog {
    async fn items(
        &self,
        _ids: &[String],
        _deadline: Instant,
    ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
        Err(UpstreamError::Misconfigured(
            "no item catalog is configured, yet the recommender answered without items".into(),
        ))
    }
}
