//! Connections per client IP across all shards (Kafka `max.connections.per.ip`). The one
//! shared lock in the server: taken only when a connection opens or closes, never per
//! request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

fn registry() -> &'static Mutex<HashMap<IpAddr, usize>> {
    static CONNECTIONS_BY_IP: OnceLock<Mutex<HashMap<IpAddr, usize>>> = OnceLock::new();
    CONNECTIONS_BY_IP.get_or_init(|| Mutex::new(HashMap::new()))
}

/// One connection counted against its IP; released on drop.
#[derive(Debug)]
pub struct IpSlot(IpAddr);

/// Counts a new connection from `ip`, or None when `ip` already has `max` connections.
pub fn try_acquire(ip: IpAddr, max: usize) -> Option<IpSlot> {
    let mut counts = registry().lock().unwrap_or_else(|e| e.into_inner());
    let count = counts.entry(ip).or_insert(0);
    if *count >= max {
        return None;
    }
    *count += 1;
    Some(IpSlot(ip))
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.0) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_enforced_and_released() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        let first = try_acquire(ip, 2).unwrap();
        let _second = try_acquire(ip, 2).unwrap();
        assert!(try_acquire(ip, 2).is_none());
        drop(first);
        assert!(try_acquire(ip, 2).is_some());
    }
}
