//! The workers: threads that run the synchronous [`Processor`] on their partitions' batches
//! (parse, extract, filter, dedup, local intel, score) and hand what each batch produced to
//! the sink. One thread per core by default (`pipeline.workers`), so parsing uses every core
//! while the async runtime keeps the Kafka clients and the sink moving.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::consume::RawBatch;
use crate::stages::process::{Processed, Processor};
use crate::telemetry::events::BackpressureWaited;
use crate::telemetry::Metrics;

/// What one worker produced from one batch.
pub(super) type ProcessedBatch = Vec<Processed>;

/// Processes batches until the consumer closes the input or the sink goes away. Blocking:
/// runs on a thread of its own.
pub(super) fn worker_loop(
    processor: Arc<Processor>,
    mut input: mpsc::Receiver<RawBatch>,
    output: mpsc::Sender<ProcessedBatch>,
    metrics: Arc<Metrics>,
) {
    while let Some(batch) = input.blocking_recv() {
        let processed = processor.process_batch(&batch.events, batch.received);
        match output.try_send(processed) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => break,
            Err(mpsc::error::TrySendError::Full(processed)) => {
                let waited_from = Instant::now();
                if output.blocking_send(processed).is_err() {
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
