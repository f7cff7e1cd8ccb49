//! Helpers shared by the integration tests (`tests/`) and the benches (`benches/`): unique
//! names, the broker address, the format fixture files, the pipeline on a task and the remote
//! stage's building blocks. Compiled only with the `test-support` feature, which the package's
//! own dev-dependency on itself turns on; not part of the daemon's interface.
//!
//! Helpers that need a dev-dependency (`tempfile`, `jsonschema`) stay in `tests/common`.
#![cfg(feature = "test-support")]
#![doc(hidden)]

pub mod fixtures;
pub mod pipeline;
pub mod remote;

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
