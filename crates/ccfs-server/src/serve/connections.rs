//! The open connections: how many there may be, whether each has a request in flight, when an
//! idle one must close (`header_timeout_secs`, `idle_timeout_secs`), and which one gives way
//! when a new connection arrives at `max_connections`.
//!
//! A connection is *idle* while no request is in flight on it: before its first request is
//! complete (TLS handshake and header included), and between two requests of a keep-alive
//! connection. Only idle connections are closed by a deadline or shed for a newcomer, so a
//! request once read always gets its answer, and slow clients holding every slot cannot lock
//! out `/healthz` or a real client: each newcomer takes the place of the one idle the longest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection was closed by the server: its metric's label type, declared with the
/// others in `crate::telemetry` (which imports nothing of the server's loops).
pub(crate) use crate::telemetry::ShedReason as Reason;

impl Reason {
    fn count(self) {
        crate::telemetry::connection_shed(self);
    }
}

/// The limits connections are held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub cap: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Every open connection, under one lock.
///
/// One `std::sync::Mutex` over all of them rather than one per connection: choosing whom to
/// shed and a request starting on that very connection must not interleave (a request that
/// has started is never cut), and one lock makes every transition (admit, first byte, request
/// start and end, expiry, close) atomic with the choice. Each holds it for a few field writes,
/// never across an `.await`, so a blocking mutex is right; the only O(n) work under it is the
/// scan for the oldest idle connection, done only when a newcomer finds the server full.
pub(super) struct Connections {
    limits: Limits,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    in_flight: u32,
    /// When the connection last became idle: accepted, or its last request ended.
    idle_since: Instant,
    /// No request has been read yet: the header clock runs from `idle_since`.
    fresh: bool,
    /// When the first byte of the next request arrived on a keep-alive connection.
    header_from: Option<Instant>,
    /// Wakes the connection's watchdog when its deadline moves or it is shed.
    changed: Arc<Notify>,
}

impl Entry {
    /// When an idle connection must close, and why; `None` while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Reason)> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match (self.fresh, self.header_from) {
            (true, _) => (
                self.idle_since + limits.header_timeout,
                Reason::HeaderTimeout,
            ),
            (false, Some(t)) => (t + limits.header_timeout, Reason::HeaderTimeout),
            (false, None) => (self.idle_since + limits.idle_timeout, Reason::IdleTimeout),
        })
    }
}

/// What a connection's watchdog should do now.
enum Verdict {
    /// Close: the connection was shed for a newcomer.
    Shed,
    /// A request is in flight: wait for a change.
    Busy,
    /// Idle: close at this instant unless something changes first.
    Until(Instant, Reason),
}

impl Connections {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked: every transition is a few
        // plain field writes.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for a new connection: at the cap, the connection idle the longest is shed
    /// (its watchdog is woken to close it); with every connection busy, `None` (the newcomer
    /// is to be closed at once).
    pub fn admit(self: &Arc<Self>) -> Option<Arc<Connection>> {
        let mut table = self.lock();
        if table.open.len() >= self.limits.cap {
            let oldest_idle = table
                .open
                .iter()
                .filter(|(_, e)| e.in_flight == 0)
                .min_by_key(|(_, e)| e.idle_since)
                .map(|(id, _)| *id);
            let Some(victim) = oldest_idle.and_then(|id| table.open.remove(&id)) else {
                Reason::Cap.count();
                return None;
            };
            // Removed from the table, it can start no request: its watchdog finds it gone.
            victim.changed.notify_one();
            Reason::Cap.count();
        }
        let id = table.next_id;
        table.next_id += 1;
        let changed = Arc::new(Notify::new());
        table.open.insert(
            id,
            Entry {
                in_flight: 0,
                idle_since: Instant::now(),
                fresh: true,
                header_from: None,
                changed: changed.clone(),
            },
        );
        crate::telemetry::connections_open(table.open.len());
        Some(Arc::new(Connection {
            id,
            connections: self.clone(),
            awaiting_first_byte: AtomicBool::new(false),
            changed,
        }))
    }
}

/// One admitted connection's link to [`Connections`]; dropping it (when the connection's task
/// ends) frees its place.
pub(super) struct Connection {
    id: u64,
    connections: Arc<Connections>,
    /// Set between two requests of a keep-alive connection, until the next byte arrives: lets
    /// the read path skip the lock on every read but the first after a request.
    awaiting_first_byte: AtomicBool,
    changed: Arc<Notify>,
}

impl Connection {
    /// Notes that bytes arrived: on an idle keep-alive connection, the next request's header
    /// clock starts.
    pub fn bytes_read(&self) {
        // Relaxed is enough: the flag only saves a lock; the lock orders the state itself.
        if !self.awaiting_first_byte.load(Ordering::Relaxed)
            || !self.awaiting_first_byte.swap(false, Ordering::Relaxed)
        {
            return;
        }
        let mut table = self.connections.lock();
        if let Some(e) = table.open.get_mut(&self.id) {
            if e.in_flight == 0 && !e.fresh && e.header_from.is_none() {
                e.header_from = Some(Instant::now());
                self.changed.notify_one();
            }
        }
    }

    /// A request's header is complete and its handling starts; `None` if the connection was
    /// shed just before (the request is then not handled at all).
    pub fn begin(self: &Arc<Self>) -> Option<RequestGuard> {
        let mut table = self.connections.lock();
        let e = table.open.get_mut(&self.id)?;
        e.in_flight += 1;
        e.fresh = false;
        e.header_from = None;
        self.awaiting_first_byte.store(false, Ordering::Relaxed);
        Some(RequestGuard {
            connection: self.clone(),
        })
    }

    /// What the watchdog should do now.
    fn verdict(&self) -> Verdict {
        let table = self.connections.lock();
        match table.open.get(&self.id) {
            None => Verdict::Shed,
            Some(e) => match e.deadline(&self.connections.limits) {
                None => Verdict::Busy,
                Some((at, reason)) => Verdict::Until(at, reason),
            },
        }
    }

    /// Resolves when the connection must be closed: it was shed, or it stayed idle past its
    /// deadline. A request in flight holds this off however long it takes.
    pub async fn must_close(&self) -> Reason {
        loop {
            // `notified` is created before the state is read, and `notify_one` keeps a permit
            // when nobody waits, so a change between the read and the wait is not missed.
            let changed = self.changed.notified();
            match self.verdict() {
                Verdict::Shed => return Reason::Cap,
                Verdict::Busy => changed.await,
                Verdict::Until(at, reason) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {
                            if self.expire(reason) {
                                return reason;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Closes the connection for `reason` if it is still idle past its deadline (checked again
    /// under the lock: a request may have started since).
    fn expire(&self, reason: Reason) -> bool {
        let mut table = self.connections.lock();
        let due = match table.open.get(&self.id) {
            Some(e) => matches!(e.deadline(&self.connections.limits),
                                Some((at, r)) if r == reason && at <= Instant::now()),
            None => false,
        };
        if due {
            table.open.remove(&self.id);
            crate::telemetry::connections_open(table.open.len());
            reason.count();
        }
        due
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut table = self.connections.lock();
        if table.open.remove(&self.id).is_some() {
            crate::telemetry::connections_open(table.open.len());
        }
    }
}

/// A request in flight: its connection is busy from the moment its header is complete until
/// this is dropped, which the response body does when it has been sent or abandoned (a long
/// download keeps its connection busy to the last byte).
pub(super) struct RequestGuard {
    connection: Arc<Connection>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let c = &self.connection;
        let mut table = c.connections.lock();
        if let Some(e) = table.open.get_mut(&c.id) {
            e.in_flight = e.in_flight.saturating_sub(1);
            if e.in_flight == 0 {
                e.idle_since = Instant::now();
                e.header_from = None;
                c.awaiting_first_byte.store(true, Ordering::Relaxed);
                c.changed.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(cap: usize) -> Limits {
        Limits {
            cap,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_idle_gives_way_and_busy_ones_never_do() {
        let all = Connections::new(limits(2));
        let a = all.admit().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = all.admit().unwrap();
        // `a` is the oldest idle one: it gives way.
        let c = all.admit().unwrap();
        assert!(matches!(a.verdict(), Verdict::Shed));
        assert!(a.begin().is_none(), "a shed connection starts no request");
        // Both remaining are busy: a newcomer is refused.
        let _gb = b.begin().unwrap();
        let _gc = c.begin().unwrap();
        assert!(all.admit().is_none());
        assert!(matches!(b.verdict(), Verdict::Busy));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_the_header_and_idle_clocks() {
        let all = Connections::new(limits(4));
        let c = all.admit().unwrap();
        let start = Instant::now();
        assert!(matches!(c.verdict(),
            Verdict::Until(at, Reason::HeaderTimeout) if at == start + Duration::from_secs(10)));
        let guard = c.begin().unwrap();
        tokio::time::advance(Duration::from_secs(30)).await;
        drop(guard);
        let idle = Instant::now();
        assert!(matches!(c.verdict(),
            Verdict::Until(at, Reason::IdleTimeout) if at == idle + Duration::from_secs(60)));
        tokio::time::advance(Duration::from_secs(5)).await;
        c.bytes_read();
        let first = Instant::now();
        assert!(matches!(c.verdict(),
            Verdict::Until(at, Reason::HeaderTimeout) if at == first + Duration::from_secs(10)));
        assert_eq!(c.must_close().await, Reason::HeaderTimeout);
        assert!(Instant::now() >= first + Duration::from_secs(10));
    }
}
