//! A backend that times its operations into the server's metrics, around whichever backend
//! the configuration picked, so both are measured alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{Batch, Committed, Head, Instance, Located, LogCursor, Snapshot, Store, StoreResult};
use crate::metrics::{Metrics, StoreOp};

pub struct Metered {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// `inner`, timed into `metrics`; `inner` itself when metrics are off.
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        if !metrics.enabled() {
            return inner;
        }
        Arc::new(Metered { inner, metrics })
    }

    async fn timed<T>(&self, op: StoreOp, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.store_operation(op, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl Store for Metered {
    async fn instance(&self) -> StoreResult<Instance> {
        self.timed(StoreOp::Instance, self.inner.instance()).await
    }

    async fn append(&self, batch: Batch) -> StoreResult<Vec<Committed>> {
        self.timed(StoreOp::Append, self.inner.append(batch)).await
    }

    async fn head(&self, kind: &str, id: &str) -> StoreResult<Head> {
        self.timed(StoreOp::Head, self.inner.head(kind, id)).await
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        self.timed(StoreOp::Snapshot, self.inner.snapshot()).await
    }

    async fn read_log(
        &self,
        object: Option<(&str, &str)>,
        after: LogCursor,
        limit: u32,
    ) -> StoreResult<Vec<Committed>> {
        self.timed(StoreOp::ReadLog, self.inner.read_log(object, after, limit)).await
    }

    async fn locate(&self, position: u64) -> StoreResult<Located> {
        self.timed(StoreOp::Locate, self.inner.locate(position)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.timed(StoreOp::Ping, self.inner.ping()).await
    }

    fn log_grew(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.log_grew()
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }
}
