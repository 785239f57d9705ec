//! The baseline Personalize suggests comparing against (its Popularity-Count recipe): the items
//! with the most events, the same list for every user; optionally without the items each user
//! has already interacted with, to compete on equal terms with a model that skips them.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use personalize_braze_core::dataset::Interaction;
use personalize_braze_core::recommender::{
    Event, RankingQuery, RecommendationQuery, Recommendations, Recommender, Recorded, Subject,
};
use personalize_braze_core::upstream::UpstreamError;

pub struct Popularity {
    /// Most events first; ties by id, so the order is total.
    ranked: Vec<String>,
    /// Per user, the ranks of the items they have seen; empty when seen items are allowed.
    seen: HashMap<String, HashSet<usize>>,
}

impl Popularity {
    pub fn train(interactions: &[Interaction], skip_seen: bool) -> Popularity {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for interaction in interactions {
            *counts.entry(interaction.item_id.as_str()).or_default() += 1;
        }
        let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut seen: HashMap<String, HashSet<usize>> = HashMap::new();
        if skip_seen {
            let rank: HashMap<&str, usize> = ranked
                .iter()
                .enumerate()
                .map(|(r, (id, _))| (*id, r))
                .collect();
            for interaction in interactions {
                seen.entry(interaction.user_id.clone())
                    .or_default()
                    .insert(rank[interaction.item_id.as_str()]);
            }
        }
        Popularity {
            ranked: ranked.into_iter().map(|(id, _)| id.to_owned()).collect(),
            seen,
        }
    }

    /// The `n` items with the most events, most first.
    pub fn top(&self, n: usize) -> Vec<String> {
        self.ranked.iter().take(n).cloned().collect()
    }
}

impl Recommender for Popularity {
    /// The same list for everyone; for related items, without the item itself.
    async fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<Recommendations, UpstreamError> {
        let seen = query.subject.user_id().and_then(|user| self.seen.get(user));
        let source = match &query.subject {
            Subject::User(_) => None,
            Subject::RelatedTo { item_id, .. } => Some(item_id),
        };
        let item_ids = self
            .ranked
            .iter()
            .enumerate()
            .filter(|(rank, id)| {
                seen.is_none_or(|seen| !seen.contains(rank)) && Some(*id) != source
            })
            .map(|(_, id)| id.clone())
            .take(query.count as usize)
            .collect();
        Ok(Recommendations {
            item_ids,
            ..Recommendations::default()
        })
    }

    /// Most events first; ids it never saw last, as given.
    async fn rank(&self, query: &RankingQuery) -> Result<Recommendations, UpstreamError> {
        let mut item_ids = query.item_ids.clone();
        item_ids.sort_by_key(|id| {
            self.ranked
                .iter()
                .position(|r| r == id)
                .unwrap_or(usize::MAX)
        });
        Ok(Recommendations {
            item_ids,
            ..Recommendations::default()
        })
    }

    async fn record(&self, _: &[Event], _: Instant) -> Recorded {
        Recorded::none(UpstreamError::Rejected(
            "the popularity baseline is fixed when it is trained".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn most_events_first_and_ties_by_id() {
        let events: Vec<Interaction> = [
            ("u1", "b"),
            ("u2", "b"),
            ("u1", "c"),
            ("u3", "a"),
            ("u3", "c"),
            ("u3", "d"),
        ]
        .into_iter()
        .map(|(user, item)| Interaction {
            user_id: user.into(),
            item_id: item.into(),
            event_type: "view".into(),
            timestamp: 1,
        })
        .collect();
        let query = |user: &str| RecommendationQuery {
            subject: Subject::User(user.into()),
            count: 3,
            ..RecommendationQuery::default()
        };
        let popularity = Popularity::train(&events, false);
        let answer = popularity.recommend(&query("u1")).await.unwrap();
        assert_eq!(answer.item_ids, ["b", "c", "a"]);

        let unseen = Popularity::train(&events, true);
        let answer = unseen.recommend(&query("u1")).await.unwrap();
        assert_eq!(answer.item_ids, ["a", "d"], "u1 saw b and c");
        let answer = unseen.recommend(&query("stranger")).await.unwrap();
        assert_eq!(answer.item_ids, ["b", "c", "a"]);
    }
}
