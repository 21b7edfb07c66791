//! Bounding a future in time: by a deadline or by a stop signal.

use std::time::Instant;

use futures_lite::future;

/// `fut`'s output, or `None` once `deadline` has passed.
pub async fn before<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Option<T>>,
) -> Option<T> {
    let late = async {
        let now = Instant::now();
        if deadline > now {
            glommio::timer::Timer::new(deadline - now).await;
        }
        None
    };
    future::or(fut, late).await
}

/// Runs `fut` unless `stop` resolves first.
pub async fn unless<F: std::future::Future, S: std::future::Future<Output = ()>>(
    fut: F,
    stop: S,
) -> Option<F::Output> {
    future::or(async { Some(fut.await) }, async {
        stop.await;
        None
    })
    .await
}
