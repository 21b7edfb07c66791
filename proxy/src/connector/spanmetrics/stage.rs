//! The per-core half of `spanmetrics`: a [`Consumer`] at the end of a traces pipeline that
//! aggregates every span it sees and hands its deltas to the connector's merger thread just
//! before each of the merger's flushes (see [`super::schedule`]; and when its key cache
//! overflows, and at shutdown).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::aggregate::Aggregator;
use super::merger::MergerHandle;
use super::schedule;
use crate::pipeline::{Consumer, Drain, LocalFuture, Payload, Refusal};
use crate::telemetry::metrics::Local;

/// One core's `spanmetrics` connector.
pub struct SpanMetricsStage {
    aggregator: RefCell<Aggregator>,
    merger: MergerHandle,
    /// Spans counted (`otelcol_connector_*`-style accounting is not in the collector; tailgate
    /// counts them as the exporter end of the traces pipeline).
    sent: Local,
    /// Requests that could not be scanned (the receiver accepted them, so they are not refused).
    failed: Local,
}

impl SpanMetricsStage {
    /// A stage feeding `merger`.
    pub fn new(merger: MergerHandle, sent: Local, failed: Local) -> Self {
        SpanMetricsStage {
            aggregator: RefCell::new(Aggregator::new(merger.settings.clone())),
            merger,
            sent,
            failed,
        }
    }

    /// Hands everything counted since the last call to the merger.
    pub fn flush(&self) {
        let deltas = self.aggregator.borrow_mut().take();
        if !deltas.is_empty() {
            // The merger only goes away at process exit; nothing to do if it already has.
            let _ = self.merger.tx.send(deltas);
        }
    }

    /// How long from `now` until this core's next hand-over: a margin before the merger's next
    /// flush on the grid they share.
    pub fn until_handover(&self, now: Instant) -> Duration {
        let interval = self.merger.settings.flush_interval;
        schedule::next_handover(self.merger.epoch, interval, now).saturating_duration_since(now)
    }
}

impl Consumer for SpanMetricsStage {
    fn consume(&self, data: Payload) -> Result<(), Refusal> {
        let mut spill = Vec::new();
        let result = self.aggregator.borrow_mut().consume(&data.body, &mut spill);
        match result {
            Ok(n) => self.sent.add(n),
            Err(e) => {
                self.failed.add(1);
                tracing::debug!("spanmetrics: request not scanned: {e}");
            }
        }
        if !spill.is_empty() {
            let _ = self.merger.tx.send(spill);
        }
        Ok(())
    }
}

impl Drain for SpanMetricsStage {
    fn flush(&self, _until: Instant) -> LocalFuture<'_> {
        SpanMetricsStage::flush(self);
        Box::pin(std::future::ready(()))
    }
}
