//! The background task that drives a [`SyncEngine`] on tokio: resolves the servers, runs each
//! round's exchanges concurrently, closes the round, waits for the next one. The thin I/O shell
//! around the engine.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tracing::warn;

use super::client::{exchange, resolve};
use super::engine::SyncEngine;
use super::options::SyncOptions;
use super::packet::RejectReason;
use super::status::{SyncEvent, SyncStatus};
use crate::clock::PhysicalClock;

/// Handle to a running sync task. Dropping it stops the task.
#[derive(Debug)]
pub struct SyncHandle {
    engine: Arc<Mutex<SyncEngine>>,
    clock: Arc<PhysicalClock>,
    events: broadcast::Sender<SyncEvent>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn lock(engine: &Mutex<SyncEngine>) -> MutexGuard<'_, SyncEngine> {
    engine.lock().unwrap_or_else(|e| e.into_inner())
}

impl SyncHandle {
    /// The status now.
    pub fn status(&self) -> SyncStatus {
        lock(&self.engine).status(&self.clock)
    }

    /// The most recent exchanges and round decisions, oldest first.
    pub fn history(&self) -> Vec<SyncEvent> {
        lock(&self.engine).history()
    }

    /// Every event from now on (a lagging receiver loses the oldest, see
    /// [`broadcast`]).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// The clock being disciplined.
    pub fn clock(&self) -> &Arc<PhysicalClock> {
        &self.clock
    }

    /// Stops the task after its current exchange and waits for it. The clock keeps its last
    /// correction (including the frequency correction).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the background sync task on the current tokio runtime: a burst round at once, then a
/// round every `opts.interval` (or the failure backoff). The clock's maximum slew rate is set
/// from the options.
pub fn spawn(clock: Arc<PhysicalClock>, opts: SyncOptions) -> SyncHandle {
    clock.set_max_slew_ppm(opts.max_slew_ppm);
    if opts.servers.is_empty() {
        warn!("ntp: no servers configured; the clock will not be synchronised");
    }
    let (events, _) = broadcast::channel(opts.history.max(16));
    let (stop, stop_rx) = watch::channel(false);
    let engine = Arc::new(Mutex::new(SyncEngine::new(opts)));
    let task = tokio::spawn(run(clock.clone(), engine.clone(), events.clone(), stop_rx));
    SyncHandle {
        engine,
        clock,
        events,
        stop,
        task: Some(task),
    }
}

async fn run(
    clock: Arc<PhysicalClock>,
    engine: Arc<Mutex<SyncEngine>>,
    events: broadcast::Sender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let delay = {
            let round = one_round(&clock, &engine, &events);
            tokio::select! {
                _ = round => {}
                _ = stop.changed() => return,
            }
            lock(&engine).next_delay()
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn one_round(
    clock: &Arc<PhysicalClock>,
    engine: &Arc<Mutex<SyncEngine>>,
    events: &broadcast::Sender<SyncEvent>,
) {
    let (plan, per_server, names, spacing, mut ex_opts) = {
        let mut e = lock(engine);
        let (plan, n) = e.plan_round();
        (
            plan,
            n,
            e.server_names(),
            e.options().burst_spacing,
            e.options().exchange,
        )
    };
    // Simulated random variation perturbs T1 and T4 independently, so δ can be negative by up
    // to twice its amplitude without anything being wrong with the reply.
    if let Some(sim) = clock.simulation() {
        let variation =
            Duration::from_secs_f64((2.0 * sim.random_variation_ms / 1e3).clamp(0.0, 1.0));
        ex_opts.negative_delay_tolerance = ex_opts.negative_delay_tolerance.max(variation);
    }
    let mut set = tokio::task::JoinSet::new();
    for idx in plan {
        let name = names.get(idx).cloned().unwrap_or_default();
        let known = lock(engine).addr(idx);
        let clock = clock.clone();
        let engine = engine.clone();
        let events = events.clone();
        set.spawn(async move {
            let addr = match known {
                Some(a) => a,
                None => match resolve(&name).await.ok().and_then(|v| v.first().copied()) {
                    Some(a) => {
                        lock(&engine).set_addr(idx, a);
                        a
                    }
                    None => {
                        let rec = lock(&engine).on_resolve_failure(idx);
                        let _ = events.send(SyncEvent::Exchange(rec));
                        return;
                    }
                },
            };
            for k in 0..per_server {
                if k > 0 {
                    tokio::time::sleep(spacing).await;
                }
                let result = exchange(&clock, addr, &ex_opts).await;
                let stop_burst = match &result.outcome {
                    Ok(_) => false,
                    // An unreachable or refusing server is not hammered within a burst.
                    Err(
                        RejectReason::KissOfDeath(_)
                        | RejectReason::Timeout
                        | RejectReason::Network,
                    ) => true,
                    Err(_) => false,
                };
                let rec = lock(&engine).on_exchange(idx, &result);
                let _ = events.send(SyncEvent::Exchange(rec));
                if stop_burst {
                    break;
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let rec = lock(engine).finish_round(clock);
    let _ = events.send(SyncEvent::Round(rec));
}
