//! The library's own tokio runtime. Every exported async function runs its work here (the app's
//! coroutine or task only awaits the handle), so a blocking SQLite call never stalls the app's UI
//! thread, and a panic inside the work ends as the surface's `Internal` error instead of
//! unwinding into Kotlin or Swift.

use crate::error::FromPanic;
use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The runtime shared by every store and agent of the process (two workers: phones have few
/// cores and the work is mostly waiting for the radio and the flash).
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // Without a runtime nothing can work; failing to start two threads is not recoverable.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("yilian")
            .enable_all()
            .build()
            .expect("yilian: cannot start the tokio runtime")
    })
}

/// Runs blocking work (SQLite) on the runtime's blocking pool and waits for it.
pub(crate) async fn blocking<T, E>(work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: FromPanic + Send + 'static,
{
    joined(runtime().spawn_blocking(work).await)
}

/// Runs async work (network) on the runtime and waits for it.
pub(crate) async fn spawned<T, E>(work: impl Future<Output = Result<T, E>> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: FromPanic + Send + 'static,
{
    joined(runtime().spawn(work).await)
}

fn joined<T, E: FromPanic>(result: Result<Result<T, E>, tokio::task::JoinError>) -> Result<T, E> {
    match result {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into());
            tracing::error!(%message, "panic inside a Yilian call");
            Err(E::from_panic(message))
        }
        Err(_) => Err(E::from_panic("the call was cancelled".into())),
    }
}
