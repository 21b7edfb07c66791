//! An n×n mesh of bounded glommio channels between cores, with room checked before sending.
//!
//! Built once at start-up ([`MeshSetup::new`]) and shared through `Arc`; each core takes its own
//! ends ([`MeshSetup::take`]) and connects them ([`CoreEnds::connect`]) after every core has
//! started. Each ordered pair of cores has its own single-producer channel, so a sender that sees
//! room in several channels ([`Mesh::has_room`]) can then send to all of them without failing: only
//! it adds to those channels. The glommio channel does not expose its fill level, so each pair
//! keeps an in-flight counter: the sender adds one per message, the receiver subtracts one after
//! it has *processed* the message (so "empty" also means "nothing being worked on").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender};
use glommio::channels::shared_channel::{SharedReceiver, SharedSender};

/// One core's unconnected ends: senders to every other core, receivers from every other core.
pub struct CoreEnds<T: Send + 'static> {
    core: usize,
    senders: Vec<Option<(SharedSender<T>, Arc<AtomicUsize>)>>,
    receivers: Vec<Option<(SharedReceiver<T>, Arc<AtomicUsize>)>>,
}

/// Every core's ends, before the cores take them.
pub struct MeshSetup<T: Send + 'static> {
    cores: usize,
    capacity: usize,
    ends: Mutex<Vec<Option<CoreEnds<T>>>>,
    /// Cores that stopped sending (shutdown barrier).
    closed: Arc<AtomicUsize>,
}

impl<T: Send + 'static> MeshSetup<T> {
    /// Channels for `cores` cores, `capacity` messages per ordered pair.
    pub fn new(cores: usize, capacity: usize) -> Self {
        let cores = cores.max(1);
        let capacity = capacity.max(1);
        let mut ends: Vec<CoreEnds<T>> = (0..cores)
            .map(|core| CoreEnds {
                core,
                senders: (0..cores).map(|_| None).collect(),
                receivers: (0..cores).map(|_| None).collect(),
            })
            .collect();
        for from in 0..cores {
            for to in 0..cores {
                if from == to {
                    continue;
                }
                let (tx, rx) = shared_channel::new_bounded(capacity);
                let in_flight = Arc::new(AtomicUsize::new(0));
                ends[from].senders[to] = Some((tx, in_flight.clone()));
                ends[to].receivers[from] = Some((rx, in_flight));
            }
        }
        MeshSetup {
            cores,
            capacity,
            ends: Mutex::new(ends.into_iter().map(Some).collect()),
            closed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Core `core`'s ends (once).
    pub fn take(&self, core: usize) -> Option<CoreEnds<T>> {
        let mut ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.get_mut(core).and_then(Option::take)
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.cores
    }
}

impl<T: Send + 'static> CoreEnds<T> {
    /// Connects every end concurrently (each waits for its peer core to connect the other end).
    pub async fn connect(self, setup: &MeshSetup<T>) -> Mesh<T> {
        let senders: Vec<_> = self
            .senders
            .into_iter()
            .map(|s| {
                s.map(|(tx, n)| {
                    (
                        glommio::spawn_local(async move { tx.connect().await }).detach(),
                        n,
                    )
                })
            })
            .collect();
        let receivers: Vec<_> = self
            .receivers
            .into_iter()
            .map(|r| {
                r.map(|(rx, n)| {
                    (
                        glommio::spawn_local(async move { rx.connect().await }).detach(),
                        n,
                    )
                })
            })
            .collect();
        let mut out_senders = Vec::new();
        for s in senders {
            out_senders.push(match s {
                Some((task, n)) => task.await.map(|tx| (tx, n)),
                None => None,
            });
        }
        let mut out_receivers = Vec::new();
        for r in receivers {
            out_receivers.push(match r {
                Some((task, n)) => task.await.map(|rx| (rx, n)),
                None => None,
            });
        }
        let inbound = out_receivers
            .iter()
            .flatten()
            .map(|(_, n)| n.clone())
            .collect();
        Mesh {
            core: self.core,
            capacity: setup.capacity,
            senders: out_senders,
            receivers: out_receivers,
            inbound,
            closed: setup.closed.clone(),
            cores: setup.cores,
        }
    }
}

/// One core's connected ends.
pub struct Mesh<T: Send + 'static> {
    core: usize,
    cores: usize,
    capacity: usize,
    senders: Vec<Option<(ConnectedSender<T>, Arc<AtomicUsize>)>>,
    receivers: Vec<Option<(ConnectedReceiver<T>, Arc<AtomicUsize>)>>,
    /// In-flight counters of every channel into this core (outlive `take_receivers`).
    inbound: Vec<Arc<AtomicUsize>>,
    closed: Arc<AtomicUsize>,
}

/// Why a message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The channel to that core is full.
    Full,
    /// The peer is gone (shutting down) or the index is this core / out of range.
    Closed,
}

impl<T: Send + 'static> Mesh<T> {
    /// This core's index.
    pub fn core(&self) -> usize {
        self.core
    }

    /// Number of cores in the mesh.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Whether the channel to `to` has room for one more message (stays true until this core
    /// sends: nobody else adds to that channel).
    pub fn has_room(&self, to: usize) -> bool {
        match self.senders.get(to) {
            Some(Some((_, n))) => n.load(Ordering::Acquire) < self.capacity,
            _ => to == self.core,
        }
    }

    /// Sends `msg` to core `to` without waiting.
    pub fn try_send(&self, to: usize, msg: T) -> Result<(), SendError> {
        let Some(Some((tx, n))) = self.senders.get(to) else {
            return Err(SendError::Closed);
        };
        if n.load(Ordering::Acquire) >= self.capacity {
            return Err(SendError::Full);
        }
        n.fetch_add(1, Ordering::AcqRel);
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(e) => {
                n.fetch_sub(1, Ordering::AcqRel);
                Err(match e {
                    glommio::GlommioError::WouldBlock(_) => SendError::Full,
                    _ => SendError::Closed,
                })
            }
        }
    }

    /// Takes the receiving ends out (for the tasks that serve them); each comes with the counter
    /// to decrement once a message has been processed.
    pub fn take_receivers(&mut self) -> Vec<(usize, ConnectedReceiver<T>, Arc<AtomicUsize>)> {
        self.receivers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, r)| r.take().map(|(rx, n)| (i, rx, n)))
            .collect()
    }

    /// Messages sent to this core and not yet processed, over all channels into it.
    pub fn inbound_pending(&self) -> usize {
        self.inbound.iter().map(|n| n.load(Ordering::Acquire)).sum()
    }

    /// Marks this core as no longer sending; returns the shared count of closed cores.
    pub fn close_sending(&self) -> Arc<AtomicUsize> {
        self.closed.fetch_add(1, Ordering::AcqRel);
        self.closed.clone()
    }
}
