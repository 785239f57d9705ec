//! The ports over AWS: [`personalize`] (GetRecommendations, GetPersonalizedRanking, PutEvents)
//! implements the `Recommender` port, [`dynamodb`] (BatchGetItem) the `Catalog` port. [`sdk`]
//! builds the SDK clients every binary uses; [`errors`] sorts the SDK's errors into the ports'.

pub mod dynamodb;
pub mod errors;
pub mod personalize;
pub mod sdk;
