//! [`ZSet`]: the embedded stand-in for a Redis sorted set. The task queues are sorted sets in
//! Redis, and who runs next depends on their exact order, so this keeps it: by score, then by
//! member (Redis compares equal scores' members as bytes, which is how ids compare).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// Members ordered by an integer score (every score the task scripts write is a whole number).
pub(super) struct ZSet<M> {
    ordered: BTreeSet<(i64, M)>,
    scores: HashMap<M, i64>,
}

impl<M> Default for ZSet<M> {
    fn default() -> Self {
        Self {
            ordered: BTreeSet::new(),
            scores: HashMap::new(),
        }
    }
}

impl<M: Ord + Hash + Clone> ZSet<M> {
    /// `ZADD`: adds `m`, or moves it to `score` when it is there already.
    pub fn add(&mut self, m: &M, score: i64) {
        if let Some(old) = self.scores.insert(m.clone(), score) {
            self.ordered.remove(&(old, m.clone()));
        }
        self.ordered.insert((score, m.clone()));
    }

    /// `ZREM`: whether `m` was there.
    pub fn remove(&mut self, m: &M) -> bool {
        match self.scores.remove(m) {
            Some(score) => self.ordered.remove(&(score, m.clone())),
            None => false,
        }
    }

    /// `ZRANGE 0 0`: the first member.
    pub fn first(&self) -> Option<&M> {
        self.ordered.first().map(|(_, m)| m)
    }

    /// `ZRANGEBYSCORE -inf max` then `ZREM` of each: the members due by `max`, in order.
    pub fn take_until(&mut self, max: i64) -> Vec<M> {
        let due = self.until(max);
        for m in &due {
            self.remove(m);
        }
        due
    }

    /// `ZRANGEBYSCORE -inf max`: the members due by `max`, in order, left in place.
    pub fn until(&self, max: i64) -> Vec<M> {
        self.ordered
            .iter()
            .take_while(|(score, _)| *score <= max)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// `ZRANGE 0 -1`: every member, in order.
    pub fn members(&self) -> Vec<M> {
        self.ordered.iter().map(|(_, m)| m.clone()).collect()
    }

    /// `ZCARD`.
    pub fn len(&self) -> u64 {
        self.ordered.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_by_score_then_member_and_rescored_in_place() {
        let mut z = ZSet::default();
        z.add(&"b".to_owned(), 2);
        z.add(&"a".to_owned(), 2);
        z.add(&"c".to_owned(), 1);
        assert_eq!(z.members(), ["c", "a", "b"]);
        z.add(&"c".to_owned(), 3);
        assert_eq!(
            (z.members(), z.len()),
            (vec!["a".into(), "b".into(), "c".into()], 3)
        );
        assert_eq!(z.until(2), ["a", "b"]);
        assert_eq!(z.take_until(2), ["a", "b"]);
        assert!(z.until(2).is_empty());
        assert!(!z.remove(&"a".to_owned()));
        assert_eq!(z.first().map(String::as_str), Some("c"));
    }
}
