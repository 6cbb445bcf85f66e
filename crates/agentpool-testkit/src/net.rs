//! Port allocation.

use std::net::{Ipv4Addr, TcpListener};

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The OS picks it (bind to port 0) and the listener is dropped at once, so another process
/// may grab it before the caller binds; callers that start servers retry on a bind failure.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to pick a free port")
        .port()
}
