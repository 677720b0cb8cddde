//! The pool `PORT`s come from: a port is handed out only if nothing else holds it (checked by
//! binding it on 127.0.0.1) and no instance of this supervisor has it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::Mutex;

use crate::RunError;

#[derive(Debug)]
pub(crate) struct PortPool {
    range: RangeInclusive<u16>,
    /// Ports held by instances, and where the next search starts (spreads reuse out, so a
    /// port just released is not handed straight back while a client may still talk to it).
    state: Mutex<(BTreeSet<u16>, u16)>,
}

impl PortPool {
    /// Hands out ports from a random place in the range onwards, so that two servers on one
    /// host (or tests side by side) started together don't reach for the same ports first.
    pub(crate) fn new(range: RangeInclusive<u16>) -> Self {
        use rand::Rng;
        let start = if range.is_empty() {
            *range.start()
        } else {
            rand::thread_rng().gen_range(range.clone())
        };
        PortPool {
            range,
            state: Mutex::new((BTreeSet::new(), start)),
        }
    }

    pub(crate) fn allocate(&self) -> Result<u16, RunError> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (used, next) = &mut *guard;
        if start <= end {
            let len = u32::from(end - start) + 1;
            for i in 0..len {
                let offset = (u32::from(next.saturating_sub(start)) + i) % len;
                let port = start + offset as u16;
                if !used.contains(&port) && is_free(port) {
                    used.insert(port);
                    *next = if port == end { start } else { port + 1 };
                    return Ok(port);
                }
            }
        }
        Err(RunError::NoFreePort { start, end })
    }

    /// Keeps `port` if it is still free for it, else hands out another (and releases it).
    pub(crate) fn reconfirm(&self, port: u16) -> Result<u16, RunError> {
        if is_free(port) {
            return Ok(port);
        }
        let new = self.allocate()?;
        self.release(port);
        Ok(new)
    }

    pub(crate) fn release(&self, port: u16) {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(&port);
    }
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_ports_in_use_and_held() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = taken.local_addr().unwrap().port();
        let pool = PortPool::new(p..=p);
        assert!(
            pool.allocate().is_err(),
            "a port bound elsewhere is not handed out"
        );
        drop(taken);
        assert_eq!(pool.allocate().unwrap(), p);
        assert!(
            pool.allocate().is_err(),
            "a held port is not handed out twice"
        );
        pool.release(p);
        assert_eq!(pool.allocate().unwrap(), p);
    }
}
