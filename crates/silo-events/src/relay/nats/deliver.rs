//! Delivery on the nats bus: JetStream → a consuming service's inbox, as
//! that service.
//!
//! Each consumed type has its own durable pull consumer (nats-server 2.9
//! filters a consumer on one subject). A feeder task per durable pulls
//! continuously and hands messages to one [`Delivery`] per service, which
//! holds them, writes the ones that are ready into the service's
//! `silo_inbox` in one transaction (`ON CONFLICT (event_id) DO NOTHING`),
//! commits, then acks them. A kill at any point loses nothing (what was
//! not acked comes again) and doubles nothing (the inbox's unique event
//! id).
//!
//! **Order.** The inbox receives the service's events in stream order,
//! across all its types, so per key (and per publisher) publish order
//! holds even when two types share a key (`battle.created`,
//! `battle.updated`). JetStream alone does not promise that: a message
//! handed to a worker that died comes again only after the ack wait, by
//! which time later ones may have been handed out; and two durables run
//! independently. So a held message is written only once nothing below
//! it can still come, judged from each durable's state on the server
//! ([`bound`]): every message a durable handed out and not yet saw acked
//! is held here (counted at first, then by following the delivery
//! sequence without gaps), each durable's undelivered messages all lie
//! above what it delivered, and nothing goes past the stream's last
//! sequence read before the durables' states (a message published later
//! may sit above one of another type still on its way). One delivery per
//! service holds the bound;
//! a second worker for the same service does not break the order (the
//! held counts never match for both), it only slows both.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Subject;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::{FutureExt, StreamExt};
use silo_manifest::{Manifest, Service};
use silo_store::{ServiceConnection, Stores};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::admit::Gate;
use super::connect::Connection;
use super::envelope::Envelope;
use super::error::{NatsError, request};
use super::stream;
use crate::EventsError;
use crate::relay::inbox_rows;

/// The connections' name on the store's server.
const APPLICATION: &str = "silo events delivery";

/// How many messages a feeder asks for at once.
const PULL_BATCH: usize = 500;

/// How long one pull request waits for messages; a stop waits this long
/// at most for the request in flight to end.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// How many acks the server counted (its ack floor passed them) a durable
/// keeps at most, to send again after a reconnection (see
/// [`Durable::settled`]). Past it the oldest go: a forgotten ack then
/// costs the ack wait, as it would without them.
const SETTLED_MAX: usize = 100_000;

/// How often a feeder looks whether its client connected again.
const RECONNECT_POLL: Duration = Duration::from_millis(100);

/// How long a step waits for deliveries the server already made to reach
/// this process before it judges the order by counting instead.
const CATCH_UP: Duration = Duration::from_millis(200);

/// What a feeder hands the delivery.
enum Feed {
    /// A message of durable `.0`.
    Message(usize, Box<Message>),
    /// Durable `.0`'s pull started over (after an error): deliveries made
    /// to the old one may be lost, so the order is judged by counting
    /// again.
    Restarted(usize),
    /// As [`Feed::Restarted`], after the connection came back: the server
    /// may have restarted and forgotten acks it got before (see
    /// [`Durable::settled`]), so what was written and acked is acked again.
    /// Otherwise those would come again only after the ack wait, and the
    /// order would hold everything back until then.
    Reconnected(usize),
}

/// What this process knows of one durable's deliveries.
#[derive(Debug)]
struct Durable {
    /// Messages handed to us and not acked, by stream sequence, with the
    /// delivery sequence of their latest delivery.
    held: BTreeMap<u64, (u64, Message)>,
    /// Stream sequences written and acked here, above the durable's ack
    /// floor, with the subject their ack went to: a copy delivered again
    /// is acked, not held, and after a reconnection each is acked again.
    done: BTreeMap<u64, Option<Subject>>,
    /// Stream sequences that left `done` because the ack floor passed
    /// them, with their ack's subject, for the durable's ack wait from
    /// then ([`SETTLED_MAX`] at most): after a reconnection each is acked
    /// again, and a copy delivered again is acked, not held. A nats-server
    /// killed may come back with its consumers' state of some time before
    /// (it writes that state after the change): seen on 2.9, seconds of
    /// acks gone, and now and then all of them. An ack it forgot keeps the
    /// message handed out until its ack wait ends; one older than that is
    /// handed out again at once, so the ack wait is as long as acks are
    /// worth keeping.
    settled: BTreeMap<u64, Option<Subject>>,
    /// When each of `settled` left `done`, oldest first.
    settled_at: VecDeque<(tokio::time::Instant, u64)>,
    /// The durable's ack wait: how long `settled` keeps an ack.
    ack_wait: Duration,
    /// Whether every message the server handed out and saw no ack for is
    /// known to be held here (see [`bound`]).
    synced: bool,
    /// The last delivery sequence received; deliveries come in order on
    /// one subscription, so a jump means one was lost.
    last_dseq: Option<u64>,
}

impl Durable {
    fn new(ack_wait: Duration) -> Self {
        Durable {
            held: BTreeMap::new(),
            done: BTreeMap::new(),
            settled: BTreeMap::new(),
            settled_at: VecDeque::new(),
            ack_wait,
            synced: false,
            last_dseq: None,
        }
    }

    /// Whether stream sequence `sseq` was written and acked here (and not
    /// long ago): a copy of it is acked, not held.
    fn acked(&self, sseq: u64) -> bool {
        self.done.contains_key(&sseq) || self.settled.contains_key(&sseq)
    }

    /// The server's ack floor is `floor`: what it passed moves from `done`
    /// to `settled`, and `settled` drops what it kept long enough.
    fn settle(&mut self, floor: u64, now: tokio::time::Instant) {
        let above = self.done.split_off(&(floor + 1));
        for (seq, reply) in std::mem::replace(&mut self.done, above) {
            self.settled.insert(seq, reply);
            self.settled_at.push_back((now, seq));
        }
        while let Some((at, seq)) = self.settled_at.front().copied() {
            if now.duration_since(at) <= self.ack_wait && self.settled_at.len() <= SETTLED_MAX {
                break;
            }
            self.settled_at.pop_front();
            self.settled.remove(&seq);
        }
    }

    /// The subjects of every ack this durable keeps: `done`'s and
    /// `settled`'s.
    fn acks(&self) -> impl Iterator<Item = &Subject> {
        self.done.values().chain(self.settled.values()).flatten()
    }
}

/// A durable's state on the server, as [`bound`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerView {
    /// Messages handed out and not acked.
    pub ack_pending: u64,
    /// Messages not handed out yet.
    pub pending: u64,
    /// The last delivery sequence and the stream sequence it carried.
    pub delivered_dseq: u64,
    pub delivered_sseq: u64,
    /// Every stream sequence up to this one is acked.
    pub ack_floor_sseq: u64,
}

/// What this process holds of a durable, as [`bound`] needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalView {
    /// Held messages delivered no later than the server's last delivery
    /// in its view (one delivered since cannot stand for one missing).
    pub held: u64,
    pub synced: bool,
    pub last_dseq: Option<u64>,
}

/// The highest stream sequence up to which this durable can hand out
/// nothing more that is not held here, and whether everything it handed
/// out is now known to be held. `last` is the stream's last sequence,
/// read before `server`.
///
/// Everything handed out and not acked is held when (synced) every
/// delivery up to the server's last one reached us without a gap, or
/// (not synced yet) when we hold as many as the server counts. Then
/// nothing can come below the last delivered stream sequence, or, when
/// nothing is left to hand out, below anything published before `last`
/// was read. Otherwise what is missing lies above the ack floor.
///
/// A service with one durable may pass the last stream sequence it
/// delivered, `server.delivered_sseq`, as `last`: with nothing left to hand
/// out, everything up to it was handed out, and whatever comes later lies
/// above it. That bound is never above the stream's last sequence.
pub(crate) fn bound(local: LocalView, server: ServerView, last: u64) -> (u64, bool) {
    let complete = if local.synced {
        local.last_dseq.is_some_and(|d| d >= server.delivered_dseq)
    } else {
        server.ack_pending == local.held
    };
    let bound = if !complete {
        server.ack_floor_sseq
    } else if server.pending > 0 {
        server.delivered_sseq
    } else {
        last
    };
    (bound.min(last), complete)
}

/// The delivery of one consuming service.
pub struct Delivery {
    service: Service,
    bus: Connection,
    stream: String,
    consumers: Vec<PullConsumer>,
    durables: Vec<Durable>,
    rx: mpsc::Receiver<Feed>,
    feeders: Vec<JoinHandle<()>>,
    /// Tells the feeders to stop pulling.
    stop_feeders: watch::Sender<bool>,
    /// Tells the feeders to give up their pull requests in flight at once
    /// rather than let them run out (see [`Delivery::finish`]).
    give_up: watch::Sender<bool>,
    store: Option<ServiceConnection>,
    /// What a message must pass to reach the inbox.
    gate: Gate,
    /// Messages skipped since [`Delivery::take_skipped`] last asked.
    skipped: u64,
    /// Requests for the stream's or a durable's state made so far.
    reads: AtomicU64,
    /// Messages acked after their turn came (written or skipped).
    acked: u64,
}

impl Drop for Delivery {
    fn drop(&mut self) {
        for f in &self.feeders {
            f.abort();
        }
    }
}

impl Delivery {
    /// Starts pulling from `service`'s durables, which must exist (see
    /// [`stream::set_up`]). The contracts are loaded here, once.
    pub async fn start(
        bus: &Connection,
        manifest: &Manifest,
        service: &Service,
    ) -> Result<Self, EventsError> {
        let gate = Gate::new(manifest, crate::contracts::Contracts::load(manifest)?);
        let mut consumers = Vec::new();
        for t in &service.consumes {
            consumers.push(stream::durable(bus, manifest, service, t).await?);
        }
        let (tx, rx) = mpsc::channel(PULL_BATCH * 2);
        let (stop_feeders, stop) = watch::channel(false);
        let (give_up, giving_up) = watch::channel(false);
        let feeders = consumers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                tokio::spawn(feed(
                    i,
                    c.clone(),
                    bus.client.clone(),
                    tx.clone(),
                    stop.clone(),
                    giving_up.clone(),
                ))
            })
            .collect();
        Ok(Delivery {
            service: service.clone(),
            bus: bus.clone(),
            stream: super::names::stream_name(&manifest.project),
            durables: consumers
                .iter()
                .map(|c| Durable::new(c.cached_info().config.ack_wait))
                .collect(),
            consumers,
            rx,
            feeders,
            stop_feeders,
            give_up,
            store: None,
            gate,
            skipped: 0,
            reads: AtomicU64::new(0),
            acked: 0,
        })
    }

    /// The service this delivery writes to.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// How many messages were acked and skipped (not silo events, or
    /// refused: see [`super::admit`]) since this was last asked.
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Stops the delivery and hands back (naks) every message it pulled
    /// and did not ack, so the next worker gets them at once instead of
    /// after the ack wait (until then the order would hold back all it
    /// delivers). First lets the pull requests in flight end, taking what
    /// they bring: the server hands a nak'd message to any request still
    /// waiting, this one's included.
    pub async fn release(mut self) {
        self.end().await;
    }

    /// Ends a delivery that is caught up (see [`Delivery::caught_up`]):
    /// as [`Delivery::release`], but without waiting up to [`PULL_EXPIRES`]
    /// for the pull requests in flight to run out. Each is given up (its
    /// subscription ends) once what it brought has been taken. With
    /// nothing left to hand out, only an event published in that instant
    /// could have gone to one of them: the durables' delivered counts,
    /// read once the server has seen the subscriptions end, tell whether
    /// one did, and it would come again after the ack wait.
    pub async fn finish(mut self) {
        let _ = self.give_up.send(true);
        let seen = self.end().await;
        let gone = async {
            self.bus.client.flush().await.ok()?;
            self.server_views().await.ok()
        };
        if let Some(views) = gone.await {
            for ((d, v), t) in seen.iter().zip(views).zip(&self.service.consumes) {
                if v.delivered_dseq > *d {
                    tracing::warn!(
                        service = %self.service.name,
                        "{} messages of {t} went out as the delivery ended: they come again after the ack wait",
                        v.delivered_dseq - d
                    );
                }
            }
        }
    }

    /// Stops the feeders, takes what they bring and hands back what was
    /// not written. Returns, per durable, the last delivery sequence seen.
    async fn end(&mut self) -> Vec<u64> {
        let _ = self.stop_feeders.send(true);
        let deadline = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_secs(6);
        // The feeders end, and the channel closes, once their last
        // requests have.
        let mut seen: Vec<u64> = self
            .durables
            .iter()
            .map(|d| d.last_dseq.unwrap_or(0))
            .collect();
        while let Ok(Some(f)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            if let Feed::Message(i, m) = f {
                let info = m.info().ok();
                let sseq = info.as_ref().map(|info| info.stream_sequence);
                if let Some(info) = &info {
                    seen[i] = seen[i].max(info.consumer_sequence);
                }
                let d = &mut self.durables[i];
                match sseq {
                    // Written and acked already: a copy.
                    Some(s) if d.acked(s) => {
                        let _ = m.ack().await;
                    }
                    Some(s) => {
                        d.held.insert(s, (0, *m));
                    }
                    None => {}
                }
            }
        }
        let mut released = 0;
        for d in std::mem::take(&mut self.durables) {
            for (_, (_, m)) in d.held {
                if m.ack_with(AckKind::Nak(None)).await.is_ok() {
                    released += 1;
                }
            }
        }
        // The naks leave before the process may exit.
        let _ = self.bus.client.flush().await;
        if released > 0 {
            tracing::debug!(service = %self.service.name, released, "handed back unwritten messages");
        }
        if let Some(c) = self.store.take() {
            c.close().await;
        }
        seen
    }

    /// How many requests for the stream's or a durable's state on the
    /// server this delivery made since this was last asked.
    pub fn take_reads(&self) -> u64 {
        self.reads.swap(0, Ordering::Relaxed)
    }

    /// How many messages were acked after their turn came (written into
    /// the inbox, or skipped), in all.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// How many messages are held, not yet written.
    pub fn held(&self) -> usize {
        self.durables.iter().map(|d| d.held.len()).sum()
    }

    /// Whether every durable has handed out everything and seen it acked:
    /// nothing is left to deliver right now.
    pub async fn caught_up(&self) -> bool {
        self.server_views()
            .await
            .is_ok_and(|views| views.iter().all(|v| v.pending == 0 && v.ack_pending == 0))
    }

    /// Per consumed type, the messages its durable has not seen acked:
    /// not handed out yet (`num_pending`) or handed out and not acked,
    /// that is not yet committed in the inbox (`num_ack_pending`). One
    /// request per durable, to the server.
    pub async fn backlog(&self) -> Result<Vec<(String, u64)>, NatsError> {
        let views = self.server_views().await?;
        Ok(self
            .service
            .consumes
            .iter()
            .cloned()
            .zip(views.iter().map(|v| v.pending + v.ack_pending))
            .collect())
    }

    /// One step: when nothing is held, waits up to `wait` for a message;
    /// when something is (and was not ready), waits `wait` taking what
    /// arrives, a message on its way being what it may wait for. Then
    /// writes what is ready into the inbox. Returns the inbox rows
    /// written; [`Delivery::acked`] tells whether anything moved.
    pub async fn step(&mut self, stores: &Stores, wait: Duration) -> Result<Written, EventsError> {
        if self.held() == 0 {
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Some(f)) => self.take(f).await,
                Ok(None) | Err(_) => return Ok(Written::default()),
            }
        } else {
            let until = tokio::time::Instant::now() + wait;
            while let Ok(Some(f)) = tokio::time::timeout_at(until, self.rx.recv()).await {
                self.take(f).await;
            }
        }
        self.drain().await;
        if self.held() == 0 {
            return Ok(Written::default());
        }
        // The stream's last sequence keeps one durable's messages from
        // passing another's still on their way. With one durable, the
        // last stream sequence it delivered does that job (see [`bound`])
        // and spares a request to the server on every step.
        let (last, views) = if self.consumers.len() > 1 {
            let last = self.last_sequence().await?;
            (last, self.server_views().await?)
        } else {
            let views = self.server_views().await?;
            (views.first().map_or(0, |v| v.delivered_sseq), views)
        };
        self.catch_up(&views).await;
        let mut cutoff = u64::MAX;
        for (d, server) in self.durables.iter_mut().zip(&views) {
            let local = LocalView {
                held: d
                    .held
                    .values()
                    .filter(|(dseq, _)| *dseq <= server.delivered_dseq)
                    .count() as u64,
                synced: d.synced,
                last_dseq: d.last_dseq,
            };
            let (b, complete) = bound(local, *server, last);
            // From here on, follow the delivery sequence: every delivery
            // up to the server's last is accounted for. Not when a later
            // one arrived already: one between may have been lost.
            if complete && !d.synced && d.last_dseq.is_none_or(|l| l <= server.delivered_dseq) {
                d.synced = true;
                d.last_dseq = Some(server.delivered_dseq);
            }
            cutoff = cutoff.min(b);
            // Nothing at or below the ack floor comes again, unless the
            // server restarts and forgets.
            d.settle(server.ack_floor_sseq, tokio::time::Instant::now());
        }
        let mut ready: Vec<(u64, usize)> = self
            .durables
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.held.range(..=cutoff).map(move |(s, _)| (*s, i)))
            .collect();
        ready.sort_unstable();
        if ready.is_empty() {
            return Ok(Written::default());
        }
        let written = self.write(stores, &ready).await?;
        for (seq, i) in ready {
            let d = &mut self.durables[i];
            let mut reply = None;
            if let Some((_, m)) = d.held.remove(&seq) {
                if let Err(e) = m.ack().await {
                    // It comes again after the ack wait; the inbox keeps it
                    // from doubling.
                    tracing::debug!(error = %e, seq, "ack failed");
                }
                reply = m.reply.clone();
            }
            d.done.insert(seq, reply);
            self.acked += 1;
        }
        Ok(written)
    }

    /// Takes one feed item.
    async fn take(&mut self, feed: Feed) {
        match feed {
            Feed::Restarted(i) => {
                let d = &mut self.durables[i];
                d.synced = false;
                d.last_dseq = None;
            }
            Feed::Reconnected(i) => {
                let d = &mut self.durables[i];
                d.synced = false;
                d.last_dseq = None;
                // The server takes an ack by stream sequence: one it saw
                // already changes nothing.
                for reply in d.acks() {
                    let _ = self.bus.client.publish(reply.clone(), "".into()).await;
                }
            }
            Feed::Message(i, m) => {
                let Ok(info) = m.info() else {
                    return;
                };
                let (sseq, dseq) = (info.stream_sequence, info.consumer_sequence);
                let d = &mut self.durables[i];
                match d.last_dseq {
                    Some(last) if dseq > last + 1 => d.synced = false,
                    _ => {}
                }
                d.last_dseq = Some(d.last_dseq.unwrap_or(0).max(dseq));
                if d.acked(sseq) {
                    let _ = m.ack().await;
                } else {
                    d.held.insert(sseq, (dseq, *m));
                }
            }
        }
    }

    /// Takes everything that has arrived.
    async fn drain(&mut self) {
        while let Ok(f) = self.rx.try_recv() {
            self.take(f).await;
        }
    }

    /// Waits a moment for deliveries the server made that are not here
    /// yet.
    async fn catch_up(&mut self, views: &[ServerView]) {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        loop {
            let behind = self
                .durables
                .iter()
                .zip(views)
                .any(|(d, v)| d.synced && d.last_dseq.is_none_or(|l| l < v.delivered_dseq));
            if !behind {
                return;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(f)) => self.take(f).await,
                _ => return,
            }
        }
    }

    /// The stream's last sequence.
    async fn last_sequence(&self) -> Result<u64, NatsError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let stream = self
            .bus
            .js
            .get_stream(&self.stream)
            .await
            .map_err(request(format!("reading the stream {}", self.stream)))?;
        Ok(stream.cached_info().state.last_sequence)
    }

    async fn server_views(&self) -> Result<Vec<ServerView>, NatsError> {
        self.reads
            .fetch_add(self.consumers.len() as u64, Ordering::Relaxed);
        let infos = futures::future::join_all(self.consumers.iter().map(|c| c.get_info())).await;
        infos
            .into_iter()
            .zip(&self.consumers)
            .map(|(info, c)| {
                let info = info.map_err(request(format!(
                    "reading the consumer {}",
                    c.cached_info().name
                )))?;
                Ok(ServerView {
                    ack_pending: info.num_ack_pending as u64,
                    pending: info.num_pending,
                    delivered_dseq: info.delivered.consumer_sequence,
                    delivered_sseq: info.delivered.stream_sequence,
                    ack_floor_sseq: info.ack_floor.stream_sequence,
                })
            })
            .collect()
    }

    /// Writes the ready messages, in stream order, into the inbox in one
    /// transaction. A message that is no silo event, or that the gate
    /// refuses, is left out (and acked with the rest: it would never
    /// pass).
    async fn write(
        &mut self,
        stores: &Stores,
        ready: &[(u64, usize)],
    ) -> Result<Written, EventsError> {
        let mut events = Vec::with_capacity(ready.len());
        for (seq, i) in ready {
            let (_, m) = &self.durables[*i].held[seq];
            match self
                .gate
                .admit(m.subject.as_str(), m.headers.as_ref(), &m.payload)
            {
                Ok(e) => events.push(e),
                Err(why) => {
                    self.skipped += 1;
                    tracing::warn!(
                        service = %self.service.name,
                        subject = %m.subject,
                        seq,
                        "skipping the message on {}: {why}",
                        m.subject
                    );
                }
            }
        }
        if self.store.is_none() {
            crate::ensure(stores, &self.service).await?;
            self.store = Some(stores.connect_as(&self.service, APPLICATION).await?);
        }
        let conn = self.store.as_mut().expect("connected above");
        let started = std::time::Instant::now();
        let result = write_inbox(conn, &self.service, &events, InboxWrite::New)
            .await
            .map(|w| Written {
                took: started.elapsed(),
                ..w
            });
        if result.is_err() {
            // The connection may be broken: a fresh one next time.
            if let Some(c) = self.store.take() {
                c.close().await;
            }
        }
        result
    }
}

/// Pulls from one durable until told to stop, starting over after an
/// error. One pull request at a time, each ending after [`PULL_EXPIRES`]
/// at most: a stop lets the one in flight end and hands over everything it
/// brought, so that [`Delivery::release`] can hand it all back.
///
/// A pull request does not outlive its connection: when the client
/// connects again (the server restarted, or the network dropped) the
/// request in flight is gone on the server, so it is given up at once and
/// a new one sent, instead of waiting for the client's own timer. No pull
/// is sent while the client is disconnected: it would go out only on the
/// next connection, and then be given up as one of the old one's.
async fn feed(
    i: usize,
    consumer: PullConsumer,
    client: async_nats::Client,
    tx: mpsc::Sender<Feed>,
    mut stop: watch::Receiver<bool>,
    mut give_up: watch::Receiver<bool>,
) {
    let stats = client.statistics();
    let connects = || stats.connects.load(std::sync::atomic::Ordering::Relaxed);
    let mut seen = connects();
    let mut delay = Duration::from_millis(100);
    while !*stop.borrow() {
        // The connection's state has no notification: poll it.
        let mut tick = tokio::time::interval(RECONNECT_POLL);
        while client.connection_state() != async_nats::connection::State::Connected {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        if connects() != seen {
            seen = connects();
            if tx.send(Feed::Reconnected(i)).await.is_err() {
                return;
            }
        }
        let started = tokio::time::Instant::now();
        let ended_well = match consumer
            .batch()
            .max_messages(PULL_BATCH)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(mut messages) => {
                let mut ok = true;
                let mut gave_up = false;
                loop {
                    // What already arrived is taken before a reconnection
                    // ends the request: dropped, it would come again only
                    // after the ack wait.
                    let m = tokio::select! {
                        biased;
                        m = messages.next() => m,
                        _ = tick.tick() => {
                            if connects() == seen {
                                continue;
                            }
                            // Told at the top of the loop.
                            break;
                        }
                        _ = give_up.wait_for(|g| *g) => {
                            gave_up = true;
                            break;
                        }
                    };
                    match m {
                        Some(Ok(m)) => {
                            delay = Duration::from_millis(100);
                            if tx.send(Feed::Message(i, Box::new(m))).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "pull interrupted");
                            ok = false;
                            break;
                        }
                        None => break,
                    }
                }
                if gave_up {
                    // What arrived goes on; dropping the request ends its
                    // subscription.
                    loop {
                        let Some(Some(Ok(m))) = messages.next().now_or_never() else {
                            return;
                        };
                        if tx.send(Feed::Message(i, Box::new(m))).await.is_err() {
                            return;
                        }
                    }
                }
                // Ended by the client's own timer rather than the server's
                // answer: the connection was in trouble, and a delivery
                // may be lost. (A reconnection is told above instead.)
                ok && (connects() != seen
                    || started.elapsed() < PULL_EXPIRES + Duration::from_secs(4))
            }
            Err(e) => {
                tracing::debug!(error = %e, "pull failed");
                false
            }
        };
        if !ended_well {
            if tx.send(Feed::Restarted(i)).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }
}

/// What to do with an event already in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InboxWrite {
    /// Leave it.
    New,
    /// Make it pending again with its attempts reset (replay
    /// `--reprocess`).
    Reprocess,
}

/// Inbox rows written by one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows inserted (or made pending again), per (publishing service,
    /// type).
    pub rows: BTreeMap<(String, String), u64>,
    /// How long the statement took, begin to commit (zero when nothing
    /// was to be written).
    pub took: Duration,
}

impl Written {
    /// Rows written in all.
    pub fn total(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Writes `events` into `service`'s inbox in one statement (one
/// transaction), in order. Returns the rows inserted or (with
/// [`InboxWrite::Reprocess`]) made pending again.
pub(crate) async fn write_inbox(
    conn: &mut ServiceConnection,
    service: &Service,
    events: &[Envelope],
    mode: InboxWrite,
) -> Result<Written, EventsError> {
    // An event id twice in one statement (published again past the
    // duplicate window): the first one stands.
    let mut seen = std::collections::HashSet::new();
    let events: Vec<&Envelope> = events.iter().filter(|e| seen.insert(&e.id)).collect();
    if events.is_empty() {
        return Ok(Written::default());
    }
    let conflict = match mode {
        InboxWrite::New => "DO NOTHING",
        // Only the same source's event: another's is reported below.
        InboxWrite::Reprocess => {
            "DO UPDATE SET state = 'pending', attempts = 0, last_error = NULL, \
             next_attempt_at = NULL, done_at = NULL WHERE silo_inbox.source = excluded.source"
        }
    };
    let written = match conn {
        ServiceConnection::Postgres(c) => {
            inbox_rows::insert_postgres(c, &service.name, &events, conflict).await?
        }
        ServiceConnection::Sqlite(c) => {
            inbox_rows::insert_sqlite(c, &service.name, &events, conflict).await?
        }
    };
    Ok(Written {
        rows: written,
        took: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(ack_pending: u64, pending: u64, dseq: u64, sseq: u64, floor: u64) -> ServerView {
        ServerView {
            ack_pending,
            pending,
            delivered_dseq: dseq,
            delivered_sseq: sseq,
            ack_floor_sseq: floor,
        }
    }

    fn local(held: u64, synced: bool, last_dseq: Option<u64>) -> LocalView {
        LocalView {
            held,
            synced,
            last_dseq,
        }
    }

    #[test]
    fn a_dead_workers_unacked_messages_hold_back_everything_above_the_floor() {
        // Ten handed to a worker that died, five to us: the ten come back
        // only after the ack wait, and nothing above the floor may go.
        let (b, complete) = bound(local(5, false, Some(15)), server(15, 0, 15, 40, 7), 50);
        assert_eq!((b, complete), (7, false));
    }

    #[test]
    fn once_all_are_held_everything_handed_out_may_go() {
        // Up to the stream's last sequence read before: a message
        // published since may lie above one of another type on its way.
        assert_eq!(
            bound(local(15, false, Some(15)), server(15, 0, 15, 40, 7), 50),
            (50, true)
        );
        // With more left to hand out, only up to what was handed out.
        assert_eq!(
            bound(local(15, false, Some(15)), server(15, 3, 15, 40, 7), 50),
            (40, true)
        );
        assert_eq!(
            bound(local(15, false, Some(15)), server(15, 3, 15, 60, 7), 50),
            (50, true)
        );
    }

    #[test]
    fn synced_durables_follow_the_delivery_sequence() {
        // Acks not yet counted by the server do not hold a synced durable
        // back, deliveries still on their way do.
        assert_eq!(
            bound(local(2, true, Some(30)), server(9, 0, 30, 80, 60), 90),
            (90, true)
        );
        assert_eq!(
            bound(local(2, true, Some(29)), server(9, 0, 30, 80, 60), 90),
            (60, false)
        );
    }
}
