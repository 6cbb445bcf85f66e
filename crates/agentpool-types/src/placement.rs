//! The placement choice, as a pure function. The Redis `reserve` script implements the same rule
//! with sorted-set ranges; the embedded registry calls this.

use crate::{Placement, ProcessId};

/// A worker that could take an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub process_id: ProcessId,
    /// Free slots: capacity minus agents minus reserved.
    pub free: u32,
}

/// Picks the worker for the next agent, or `None` when no worker has a free slot.
///
/// `pack` takes the fewest free slots above zero, `spread` the most. Ties follow the order of
/// the Redis ranges the `reserve` script uses: the lowest id for `pack` (`ZRANGEBYSCORE`), the
/// highest for `spread` (`ZREVRANGEBYSCORE`).
pub fn choose(candidates: &[Candidate], placement: Placement) -> Option<&ProcessId> {
    let open = candidates.iter().filter(|c| c.free > 0);
    let best = match placement {
        Placement::Pack => {
            open.min_by(|a, b| (a.free, &a.process_id).cmp(&(b.free, &b.process_id)))
        }
        Placement::Spread => {
            open.max_by(|a, b| (a.free, &a.process_id).cmp(&(b.free, &b.process_id)))
        }
    };
    best.map(|c| &c.process_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(list: &[(&str, u32)]) -> Vec<Candidate> {
        list.iter()
            .map(|(id, free)| Candidate {
                process_id: ProcessId::parse(id).unwrap(),
                free: *free,
            })
            .collect()
    }

    #[test]
    fn pack_takes_the_fullest_open_worker() {
        let c = cands(&[("a", 5), ("b", 0), ("c", 2), ("d", 2)]);
        assert_eq!(choose(&c, Placement::Pack).unwrap().as_str(), "c");
    }

    #[test]
    fn spread_takes_the_emptiest_worker() {
        let c = cands(&[("a", 5), ("b", 0), ("c", 7), ("d", 7)]);
        assert_eq!(choose(&c, Placement::Spread).unwrap().as_str(), "d");
    }

    #[test]
    fn full_pool_has_no_choice() {
        let c = cands(&[("a", 0), ("b", 0)]);
        assert_eq!(choose(&c, Placement::Pack), None);
        assert_eq!(choose(&[], Placement::Spread), None);
    }
}
