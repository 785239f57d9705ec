//! The limits of the services this one stands between, in one place: what Amazon Personalize
//! takes in a request, and what AWS Lambda (behind API Gateway) can answer. Every check that
//! keeps a request inside them names one of these.

// Personalize: GetRecommendations and GetPersonalizedRanking.

/// `numResults` at most; `MAX_COUNT` plus the over-fetch margin stays within it.
pub const MAX_RESULTS: u32 = 500;
/// `numResults` (and `inputList` entries) at most when `metadataColumns` is asked for.
pub const MAX_RESULTS_WITH_METADATA: u32 = 50;
/// `metadataColumns` entries at most.
pub const MAX_METADATA_COLUMNS: usize = 10;
/// `inputList` entries at most (50 with metadata).
pub const MAX_RANKING_ITEMS: usize = 500;
/// A user or item id: 1 to this many characters.
pub const MAX_ID_CHARS: usize = 256;
/// `filterValues` entries, and a placeholder name's characters.
pub const MAX_FILTER_PARAMS: usize = 25;
pub const MAX_FILTER_NAME_CHARS: usize = 50;
/// One `filterValues` value, quoted and comma-separated.
pub const MAX_FILTER_VALUES_CHARS: usize = 1000;
/// `context` entries, a key's characters and a value's.
pub const MAX_CONTEXT_ENTRIES: usize = 150;
pub const MAX_CONTEXT_KEY_CHARS: usize = 150;
pub const MAX_CONTEXT_VALUE_CHARS: usize = 1000;

/// Seed items one `/related-items` request takes (`item_ids`): one call each, in parallel.
pub const MAX_SEEDS: usize = 10;

// Personalize: PutEvents.

/// `eventList` entries per call.
pub const MAX_EVENTS: usize = 10;
pub const MAX_EVENT_TYPE_CHARS: usize = 256;
/// An event's `properties`, as JSON text.
pub const MAX_PROPERTIES_CHARS: usize = 1024;
/// An event's `impression` entries.
pub const MAX_IMPRESSION_IDS: usize = 25;

// Lambda behind API Gateway.

/// The most item bytes an answer carries, counted as Lambda carries them (the body escaped into
/// its response envelope). Lambda refuses responses over 6 MB, and API Gateway turns that into a
/// bare 502; this leaves room for the envelope, the headers and `format=object`.
pub const MAX_ANSWER_ITEM_BYTES: usize = 5_000_000;

/// PutEvents' `metricAttribution.eventAttributionSource`: at most this many characters.
pub const MAX_ATTRIBUTION_SOURCE_CHARS: usize = 1024;
