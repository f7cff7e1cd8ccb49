//! The workers: threads that run the synchronous [`Processor`] on their partitions' batches
//! (parse, extract, filter, dedup, local intel, score; in scaled mode one half of it, see
//! [`Half`]) and hand what each batch produced to the sink. One thread per core by default (`pipeline.workers`), so parsing uses every core
//! while the async runtime keeps the Kafka clients and the sink moving.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::consume::RawBatch;
use super::owner::OwnerHooks;
use crate::model::RawEvent;
use crate::stages::process::{Processed, Processor};
use crate::telemetry::events::BackpressureWaited;
use crate::telemetry::Metrics;

/// What one worker produced from one batch.
pub(super) type ProcessedBatch = Vec<Processed>;

/// What a worker runs on a batch: the whole processor, or one half of it.
pub(super) trait BatchProcessor: Send + Sync + 'static {
    /// Processes the messages of one poll, in order.
    fn process_batch(&self, batch: &[RawEvent], received: Instant) -> Vec<Processed>;
}

/// Which part of the processor a pipeline runs (`[scale] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Half {
    /// Single mode: everything, in process.
    Whole,
    /// Scaled mode, input side: frame → parse → extract → filter → sightings.
    Ingest,
    /// Scaled mode, sightings side: decode → dedup → … → records and lookups.
    Owner,
}

/// The processor with the part of it a pipeline runs.
pub(super) struct ProcessorHalf {
    pub(super) processor: Arc<Processor>,
    pub(super) half: Half,
    /// The owner half: which sightings partitions are still this daemon's.
    pub(super) owner: Option<Arc<OwnerHooks>>,
}

impl BatchProcessor for ProcessorHalf {
    fn process_batch(&self, batch: &[RawEvent], received: Instant) -> Vec<Processed> {
        match self.half {
            Half::Whole => self.processor.process_batch(batch, received),
            Half::Ingest => self.processor.ingest_batch(batch, received),
            Half::Owner => {
                // Sightings of a partition revoked since they were polled are left alone: their
                // new owner reads them again (acting on them here would look the address up
                // twice). Finished without output, their offsets are not stored (the tracker
                // forgot the partition).
                let serving = self.owner.as_ref().map(|hooks| hooks.serves().clone());
                match serving {
                    Some(serving)
                        if !batch
                            .iter()
                            .all(|raw| serving.contains(&raw.origin.partition)) =>
                    {
                        let (ours, gone): (Vec<RawEvent>, Vec<RawEvent>) = batch
                            .iter()
                            .cloned()
                            .partition(|raw| serving.contains(&raw.origin.partition));
                        let mut out = self.processor.own_batch(&ours, received);
                        out.extend(gone.iter().map(|raw| Processed::nothing(raw, received)));
                        out
                    }
                    _ => self.processor.own_batch(batch, received),
                }
            }
        }
    }
}

/// Processes batches until the consumer closes the input or the sink goes away. Blocking:
/// runs on a thread of its own.
pub(super) fn worker_loop(
    processor: Arc<impl BatchProcessor>,
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
