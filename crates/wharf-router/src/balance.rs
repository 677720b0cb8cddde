//! Choosing an upstream: least outstanding requests between two candidates (power of two
//! choices). The first candidate is the next in turn and the second a random other one, so equal
//! loads (sequential requests) go round in turn and unequal ones go to the less busy.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand::Rng;

use crate::table::AppSlot;
use crate::upstream::{InFlight, UpstreamState};

/// The positions in the rotation a request has tried.
#[derive(Default)]
pub(crate) struct Tried {
    low: u64,
    /// Positions from 64 on; allocated only for such large apps.
    high: Vec<usize>,
}

impl Tried {
    pub(crate) fn contains(&self, i: usize) -> bool {
        if i < 64 {
            self.low & (1 << i) != 0
        } else {
            self.high.contains(&i)
        }
    }

    pub(crate) fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
        } else if !self.high.contains(&i) {
            self.high.push(i);
        }
    }
}

/// Picks an upstream not yet tried and not draining, and counts the request in flight on it.
/// Upstreams that recently refused connections are skipped while another is available.
pub(crate) fn pick(
    slot: &AppSlot,
    rotation: &[Arc<UpstreamState>],
    tried: &Tried,
    now_ms: u64,
) -> Option<(usize, InFlight)> {
    let n = rotation.len();
    if n == 0 {
        return None;
    }
    // Pass 0 avoids recently failed upstreams; later passes don't (they are better than none).
    // A pick can lose a race with a drain; then the next pass looks again.
    for pass in 0..3 {
        let usable = |i: usize| {
            let up = &rotation[i];
            !tried.contains(i) && !up.is_draining() && (pass > 0 || !up.is_avoided(now_ms))
        };
        let start = slot.next.fetch_add(1, Ordering::Relaxed) % n;
        let Some(first) = probe(n, start, None, &usable) else {
            continue;
        };
        let choice = if n > 1 {
            let other = (start + rand::thread_rng().gen_range(1..n)) % n;
            match probe(n, other, Some(first), &usable) {
                Some(second) if rotation[second].load() < rotation[first].load() => second,
                _ => first,
            }
        } else {
            first
        };
        if let Some(in_flight) = rotation[choice].acquire() {
            return Some((choice, in_flight));
        }
    }
    None
}

/// The first usable position from `from` on (wrapping), other than `except`.
fn probe(
    n: usize,
    from: usize,
    except: Option<usize>,
    usable: &impl Fn(usize) -> bool,
) -> Option<usize> {
    (0..n)
        .map(|k| (from + k) % n)
        .find(|&i| Some(i) != except && usable(i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Tables;
    use wharf_core::backend::Upstream;

    fn app(n: usize) -> (Tables, Arc<AppSlot>) {
        let tables = Tables::new(4, 1, None, crate::metrics::Metrics::default());
        let upstreams = (0..n)
            .map(|i| Upstream {
                id: format!("web.{i}-1"),
                dyno: format!("web.{i}"),
                addr: format!("127.0.0.1:{}", 10_000 + i).parse().unwrap(),
                release_version: 1,
            })
            .collect();
        tables.set_upstreams("app", upstreams);
        let slot = tables.app("app").unwrap();
        (tables, slot)
    }

    #[test]
    fn sequential_requests_take_turns() {
        let (_tables, slot) = app(3);
        let rotation = slot.rotation.load_full();
        let mut counts = [0; 3];
        for _ in 0..300 {
            let (i, in_flight) = pick(&slot, &rotation, &Tried::default(), 0).unwrap();
            counts[i] += 1;
            drop(in_flight);
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn busy_upstreams_get_fewer_requests() {
        let (_tables, slot) = app(2);
        let rotation = slot.rotation.load_full();
        let _busy: Vec<_> = (0..10).map(|_| rotation[0].acquire().unwrap()).collect();
        for _ in 0..20 {
            let (i, _in_flight) = pick(&slot, &rotation, &Tried::default(), 0).unwrap();
            assert_eq!(i, 1);
        }
    }

    #[test]
    fn tried_avoided_and_draining_upstreams_are_skipped() {
        let (_tables, slot) = app(3);
        let rotation = slot.rotation.load_full();
        let mut tried = Tried::default();
        tried.insert(0);
        rotation[1].avoid(0);
        for _ in 0..10 {
            let (i, _) = pick(&slot, &rotation, &tried, 0).unwrap();
            assert_eq!(i, 2);
        }
        tried.insert(2);
        // Only an avoided one is left: better than none.
        let (i, _) = pick(&slot, &rotation, &tried, 0).unwrap();
        assert_eq!(i, 1);
        tried.insert(1);
        assert!(pick(&slot, &rotation, &tried, 0).is_none());
    }
}
