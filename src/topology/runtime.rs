//! The commands' entry into tokio, and blocking work moved off the runtime.

use super::AppError;

/// Runs `future` to completion on a new multi-threaded runtime (the commands' one entry into
/// tokio).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

/// Runs blocking work (file reads, librdkafka's synchronous calls) off the runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| AppError::Panicked { what, source })
}
