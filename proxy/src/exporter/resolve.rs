//! Exporter host names resolved off the data-plane cores.
//!
//! `getaddrinfo` blocks, and on a core it would freeze that core's receivers, timers and
//! decisions for as long as a slow DNS server takes (5 s per attempt with glibc's defaults). So a
//! core sends the name to the resolver thread and awaits the answer on a oneshot channel, at most
//! `timeout`. The thread answers from its cache ([`TTL`]: `getaddrinfo` reports no TTL) or starts
//! a lookup on a worker thread of its own: a stuck `getaddrinfo` cannot be cancelled, so one slow
//! name must not hold up the others. At most [`MAX_LOOKUPS`] run at once, and requests for a name
//! already being looked up wait for that lookup. An answer that comes after the core gave up still
//! fills the cache for the next dial. IP literals never leave the core.
//!
//! The lookup is a [`Lookup`], so tests can make one that is slow on purpose.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How long a resolved name is reused (Go's resolver, which the collector uses, caches nothing;
/// 30 s keeps a changed record from being missed for long while sparing the DNS server a lookup
/// per dial per core).
pub const TTL: Duration = Duration::from_secs(30);

/// How long a core waits for an answer (glibc gives up on a silent server after 2 × 5 s).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Lookups running at once; more wait their turn.
pub const MAX_LOOKUPS: usize = 8;

/// Names kept in the cache (exporter endpoints and loadbalancing backends named by host).
const MAX_CACHED: usize = 1024;

/// A blocking name lookup, run on a resolver worker thread.
pub trait Lookup: Send + Sync + 'static {
    /// The addresses of `host`, best first.
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The system's resolver (`getaddrinfo`: /etc/hosts, /etc/resolv.conf's search list), as the
/// exporters used on the core before.
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
        Ok((host, 0).to_socket_addrs()?.map(|a| a.ip()).collect())
    }
}

/// Why a name could not be resolved; every case is a transport failure the exporter retries.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed.
    #[error("resolve {host}: {source}")]
    Failed {
        /// The name.
        host: String,
        /// What `getaddrinfo` said (shared by every request that waited for the lookup).
        #[source]
        source: Arc<io::Error>,
    },
    /// The lookup succeeded without an address.
    #[error("resolve {host}: no addresses")]
    Empty {
        /// The name.
        host: String,
    },
    /// No answer within the resolver's timeout.
    #[error("resolve {host}: no answer within {timeout:?}")]
    Timeout {
        /// The name.
        host: String,
        /// How long the core waited.
        timeout: Duration,
    },
    /// The resolver thread is gone (it could not start, or stopped).
    #[error("resolve {host}: the resolver thread is not running")]
    Stopped {
        /// The name.
        host: String,
    },
}

/// What the cores send the resolver thread, and its workers send back.
enum Msg {
    /// Resolve a name; answer on `reply`.
    Resolve {
        host: String,
        reply: oneshot::Sender<Answer>,
    },
    /// A worker's result.
    Done {
        host: String,
        result: io::Result<Vec<IpAddr>>,
    },
    /// The last handle was dropped.
    Stop,
}

type Answer = Result<Arc<[IpAddr]>, Arc<io::Error>>;

/// A handle on a resolver thread; cheap to clone, one per exporter.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Handle>,
    timeout: Duration,
}

/// Stops the thread when the last [`Resolver`] goes.
struct Handle {
    requests: mpsc::Sender<Msg>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.requests.send(Msg::Stop);
    }
}

impl Resolver {
    /// The process's resolver over [`SystemLookup`], started on first use.
    pub fn system() -> Resolver {
        static SYSTEM: OnceLock<Resolver> = OnceLock::new();
        SYSTEM
            .get_or_init(|| Resolver::start(Arc::new(SystemLookup), TTL, TIMEOUT))
            .clone()
    }

    /// A resolver thread over `lookup`, caching answers for `ttl`; cores wait `timeout` at most.
    /// If the thread cannot start, every resolution fails with [`ResolveError::Stopped`].
    pub fn start(lookup: Arc<dyn Lookup>, ttl: Duration, timeout: Duration) -> Resolver {
        let (tx, rx) = mpsc::channel();
        let service = Service {
            lookup,
            ttl,
            cache: HashMap::new(),
            waiting: HashMap::new(),
            queued: VecDeque::new(),
            running: 0,
            done: tx.clone(),
        };
        let started = std::thread::Builder::new()
            .name("tailgate-dns".to_owned())
            .spawn(move || service.run(rx));
        if let Err(e) = started {
            tracing::error!("cannot start the exporters' resolver thread: {e}");
        }
        Resolver {
            inner: Arc::new(Handle { requests: tx }),
            timeout,
        }
    }

    /// The first address of `host` with `port`, resolved on the resolver thread (an IP literal
    /// at once). Must run on a glommio executor (the wait is bounded by a glommio timer).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<SocketAddr, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let (reply, answer) = oneshot::channel();
        let stopped = || ResolveError::Stopped {
            host: host.to_owned(),
        };
        self.inner
            .requests
            .send(Msg::Resolve {
                host: host.to_owned(),
                reply,
            })
            .map_err(|_| stopped())?;
        let deadline = Instant::now().checked_add(self.timeout);
        let answer = match deadline {
            Some(d) => crate::runtime::time::before(d, async { Some(answer.await) }).await,
            None => Some(answer.await),
        };
        let addrs = match answer {
            None => {
                return Err(ResolveError::Timeout {
                    host: host.to_owned(),
                    timeout: self.timeout,
                })
            }
            Some(Err(_)) => return Err(stopped()),
            Some(Ok(Err(source))) => {
                return Err(ResolveError::Failed {
                    host: host.to_owned(),
                    source,
                })
            }
            Some(Ok(Ok(addrs))) => addrs,
        };
        addrs
            .first()
            .map(|ip| SocketAddr::new(*ip, port))
            .ok_or_else(|| ResolveError::Empty {
                host: host.to_owned(),
            })
    }
}

// === the resolver thread ===

struct Cached {
    addrs: Arc<[IpAddr]>,
    until: Instant,
}

/// The resolver thread's state.
struct Service {
    lookup: Arc<dyn Lookup>,
    ttl: Duration,
    cache: HashMap<String, Cached>,
    /// Names being looked up or queued, with the requests waiting for them.
    waiting: HashMap<String, Vec<oneshot::Sender<Answer>>>,
    /// Names waiting for a free worker.
    queued: VecDeque<String>,
    /// Workers running.
    running: usize,
    /// Where workers send their results.
    done: mpsc::Sender<Msg>,
}

impl Service {
    fn run(mut self, requests: mpsc::Receiver<Msg>) {
        while let Ok(msg) = requests.recv() {
            match msg {
                Msg::Resolve { host, reply } => self.request(host, reply),
                Msg::Done { host, result } => self.finished(host, result),
                Msg::Stop => return,
            }
        }
    }

    fn request(&mut self, host: String, reply: oneshot::Sender<Answer>) {
        let now = Instant::now();
        if let Some(c) = self.cache.get(&host) {
            if now < c.until {
                let _ = reply.send(Ok(c.addrs.clone()));
                return;
            }
        }
        if let Some(waiters) = self.waiting.get_mut(&host) {
            // Requests whose core gave up are forgotten, so a stuck lookup holds no backlog.
            waiters.retain(|w| !w.is_closed());
            waiters.push(reply);
            return;
        }
        self.waiting.insert(host.clone(), vec![reply]);
        self.queued.push_back(host);
        self.start_lookups();
    }

    fn finished(&mut self, host: String, result: io::Result<Vec<IpAddr>>) {
        self.running = self.running.saturating_sub(1);
        let answer: Answer = match result {
            Ok(addrs) => {
                let addrs: Arc<[IpAddr]> = addrs.into();
                if !addrs.is_empty() {
                    self.remember(host.clone(), addrs.clone());
                }
                Ok(addrs)
            }
            Err(e) => Err(Arc::new(e)),
        };
        for w in self.waiting.remove(&host).unwrap_or_default() {
            let _ = w.send(answer.clone());
        }
        self.start_lookups();
    }

    fn remember(&mut self, host: String, addrs: Arc<[IpAddr]>) {
        let now = Instant::now();
        if self.cache.len() >= MAX_CACHED {
            self.cache.retain(|_, c| c.until > now);
        }
        if self.cache.len() >= MAX_CACHED {
            let oldest = self
                .cache
                .iter()
                .min_by_key(|(_, c)| c.until)
                .map(|(h, _)| h.clone());
            if let Some(h) = oldest {
                self.cache.remove(&h);
            }
        }
        let until = now.checked_add(self.ttl).unwrap_or(now);
        self.cache.insert(host, Cached { addrs, until });
    }

    fn start_lookups(&mut self) {
        while self.running < MAX_LOOKUPS {
            let Some(host) = self.queued.pop_front() else {
                return;
            };
            let lookup = self.lookup.clone();
            let done = self.done.clone();
            let name = host.clone();
            let spawned = std::thread::Builder::new()
                .name("tailgate-dns-lookup".to_owned())
                .spawn(move || {
                    let result = lookup.lookup(&name);
                    let _ = done.send(Msg::Done { host: name, result });
                });
            match spawned {
                Ok(_) => self.running += 1,
                Err(e) => {
                    let answer: Answer = Err(Arc::new(e));
                    for w in self.waiting.remove(&host).unwrap_or_default() {
                        let _ = w.send(answer.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::net::Ipv4Addr;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use crate::runtime::on_test_executor;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A lookup that answers 127.0.0.1 once released (or an error after 10 s unreleased, so a
    /// broken test ends), counting its calls.
    struct Slow {
        calls: AtomicUsize,
        release: Mutex<mpsc::Receiver<()>>,
    }

    impl Slow {
        fn new() -> (Arc<Slow>, mpsc::Sender<()>) {
            let (tx, rx) = mpsc::channel();
            let slow = Arc::new(Slow {
                calls: AtomicUsize::new(0),
                release: Mutex::new(rx),
            });
            (slow, tx)
        }
    }

    impl Lookup for Slow {
        fn lookup(&self, _host: &str) -> io::Result<Vec<IpAddr>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let released = self
                .release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10));
            match released {
                Ok(()) => Ok(vec![LOCAL]),
                Err(_) => Err(io::Error::other("never released")),
            }
        }
    }

    /// The point of the module: while a lookup is slow, the core that asked keeps running its
    /// other tasks (here a timer; a receiver's request is served the same way).
    #[test]
    fn a_slow_lookup_does_not_block_the_core() {
        on_test_executor(async {
            let (slow, release) = Slow::new();
            let resolver = Resolver::start(slow.clone(), TTL, Duration::from_secs(30));
            let resolved = Rc::new(Cell::new(false));
            let task = {
                let (resolver, resolved) = (resolver.clone(), resolved.clone());
                glommio::spawn_local(async move {
                    let r = resolver.resolve("slow.test", 4317).await;
                    resolved.set(true);
                    r
                })
            };
            // The timer fires while the lookup is still held: the core was not blocked.
            glommio::timer::Timer::new(Duration::from_millis(20)).await;
            assert!(
                !resolved.get(),
                "the lookup finished before the timer: it ran on the core"
            );
            release.send(()).unwrap();
            let addr = task.await.unwrap();
            assert_eq!(addr, SocketAddr::new(LOCAL, 4317));
            assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn answers_are_cached_and_concurrent_requests_share_a_lookup() {
        on_test_executor(async {
            let (slow, release) = Slow::new();
            let resolver = Resolver::start(slow.clone(), TTL, Duration::from_secs(30));
            let ask = |port| {
                let resolver = resolver.clone();
                glommio::spawn_local(async move { resolver.resolve("gw.test", port).await })
            };
            let (a, b) = (ask(1), ask(2));
            // Both requests reach the thread before the lookup ends (polled, bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            while slow.calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
                glommio::timer::Timer::new(Duration::from_millis(5)).await;
            }
            release.send(()).unwrap();
            assert_eq!(a.await.unwrap(), SocketAddr::new(LOCAL, 1));
            assert_eq!(b.await.unwrap(), SocketAddr::new(LOCAL, 2));
            // From the cache: no second lookup (an unreleased one would fail after 10 s).
            assert_eq!(
                resolver.resolve("gw.test", 3).await.unwrap(),
                SocketAddr::new(LOCAL, 3)
            );
            assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn an_expired_answer_is_looked_up_again() {
        on_test_executor(async {
            let (slow, release) = Slow::new();
            let resolver = Resolver::start(slow.clone(), Duration::ZERO, Duration::from_secs(30));
            release.send(()).unwrap();
            release.send(()).unwrap();
            resolver.resolve("gw.test", 1).await.unwrap();
            resolver.resolve("gw.test", 1).await.unwrap();
            assert_eq!(slow.calls.load(Ordering::SeqCst), 2);
        });
    }

    #[test]
    fn a_stuck_lookup_times_out_and_its_late_answer_is_cached() {
        on_test_executor(async {
            let (slow, release) = Slow::new();
            let resolver = Resolver::start(slow.clone(), TTL, Duration::from_millis(50));
            let err = resolver.resolve("stuck.test", 1).await.unwrap_err();
            assert!(matches!(err, ResolveError::Timeout { .. }), "{err}");
            release.send(()).unwrap();
            // The lookup still finishes on its worker and fills the cache (polled, bounded).
            let deadline = Instant::now() + Duration::from_secs(10);
            let addr = loop {
                match resolver.resolve("stuck.test", 1).await {
                    Ok(a) => break a,
                    Err(e) => assert!(Instant::now() < deadline, "{e}"),
                }
            };
            assert_eq!(addr, SocketAddr::new(LOCAL, 1));
            assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn ip_literals_and_failures() {
        struct Failing;
        impl Lookup for Failing {
            fn lookup(&self, host: &str) -> io::Result<Vec<IpAddr>> {
                match host {
                    "empty.test" => Ok(Vec::new()),
                    _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
                }
            }
        }
        on_test_executor(async {
            let resolver = Resolver::start(Arc::new(Failing), TTL, TIMEOUT);
            assert_eq!(
                resolver.resolve("::1", 7).await.unwrap(),
                "[::1]:7".parse().unwrap()
            );
            let err = resolver.resolve("nx.test", 1).await.unwrap_err();
            assert!(matches!(err, ResolveError::Failed { .. }), "{err}");
            assert!(err.to_string().contains("no such host"), "{err}");
            let err = resolver.resolve("empty.test", 1).await.unwrap_err();
            assert!(matches!(err, ResolveError::Empty { .. }), "{err}");
        });
    }

    #[test]
    fn the_system_resolver_resolves_localhost() {
        on_test_executor(async {
            let addr = Resolver::system().resolve("localhost", 9).await.unwrap();
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_eq!(addr.port(), 9);
        });
    }
}
