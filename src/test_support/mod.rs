//! Helpers shared by the integration tests (`tests/`) and the benches (`benches/`): unique
//! names, the broker address, the format fixture files, the pipeline on a task and the remote
//! stage's building blocks. Compiled only with the `test-support` feature, which the package's
//! own dev-dependency on itself turns on; not part of the daemon's interface.
//!
//! Helpers that need a dev-dependency (`tempfile`, `jsonschema`) stay in `tests/common`.
#![cfg(feature = "test-support")]
#![doc(hidden)]

pub mod fixtures;
// i14-chaos: the parser entry points with their properties, for fuzz/fuzz_targets.
pub mod fuzz;
pub mod pipeline;
pub mod remote;
// w-bench: state records and the daemon's warm start, for benches/warm_start.rs.
pub mod state;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `GET path` on a daemon's metrics listener at `127.0.0.1:port`: the status and the body, or
/// `None` while it is not up.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// The broker the test script started (`THREATSIFT_TEST_BROKERS`).
pub fn brokers() -> String {
    std::env::var("THREATSIFT_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "THREATSIFT_TEST_BROKERS is not set: run the suite with scripts/test.sh, which \
             installs and starts the broker (or run scripts/broker.sh start and export \
             THREATSIFT_TEST_BROKERS=127.0.0.1:19092)"
        )
    })
}

// s1-scaled: the partition an address's sightings, state and records land on.
/// `toPositive(murmur2(key)) % partitions`, as the daemon's producers (`murmur2_random`) pick.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    crate::kafka::partition::partition_of(key, partitions)
}
