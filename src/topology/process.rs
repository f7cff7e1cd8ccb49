//! The process loop: runs the synchronous [`Processor`] on each message; a panic on one message
//! dead-letters it as `internal_error` and the stream goes on.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::model::RawEvent;
use crate::stages::process::{Processed, Processor};
use crate::telemetry::events::BackpressureWaited;
use crate::telemetry::Metrics;

pub(super) async fn process_loop(
    processor: Processor,
    mut raw_rx: mpsc::Receiver<(RawEvent, Instant)>,
    processed_tx: mpsc::Sender<Processed>,
    metrics: Arc<Metrics>,
) {
    while let Some((raw, received)) = raw_rx.recv().await {
        // A panic on one message is a bug, not a reason to stop the stream: the message goes
        // to the DLQ as `internal_error` and processing goes on.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            processor.process_message(&raw, received)
        }))
        .unwrap_or_else(|_| processor.dead_letter_internal_error(&raw, received));
        match processed_tx.try_send(processed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(processed)) => {
                let waited_from = Instant::now();
                if processed_tx.send(processed).await.is_err() {
                    break;
                }
                BackpressureWaited {
                    stage: "process",
                    waited: waited_from.elapsed(),
                }
                .emit(&metrics);
            }
        }
    }
}
