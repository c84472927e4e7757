//! The photo encoders' pool: a fixed number of slots, each empty or holding one vision
//! worker with what the page knows of it (started, loading, ready, jobs in hand, load
//! progress, engine). Every worker the page spawns gets a fresh [`WorkerId`], so a message
//! from a worker that was terminated (crashed, released) names no slot and is dropped.
//! Workers are asked to load one at a time: the first is ready (and indexing) sooner and
//! the peak memory stays at one tower being converted.
//!
//! It must not spawn, post to or terminate anything itself: `page::run` turns its answers
//! into effects for `web::workers`. Reference: issue 8, item 1 ("the worker pool").

use crate::encode::EngineKind;

/// Batches a vision worker holds at once (one running, one waiting).
pub const IN_FLIGHT_PER_WORKER: usize = 2;

/// One spawned worker: never reused for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u32);

/// What the page knows of one vision worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub id: WorkerId,
    /// Its wasm runs (it said `started`).
    pub started: bool,
    /// It was asked to load the vision tower and has not answered.
    pub loading: bool,
    pub ready: bool,
    pub in_flight: usize,
    pub load_fraction: f64,
    /// The engine it runs, once loaded, and in words.
    pub engine: Option<EngineKind>,
    pub detail: Option<String>,
}

impl Slot {
    fn new(id: WorkerId) -> Self {
        Self {
            id,
            started: false,
            loading: false,
            ready: false,
            in_flight: 0,
            load_fraction: 0.0,
            engine: None,
            detail: None,
        }
    }

    /// It can take one more batch.
    pub fn has_room(&self) -> bool {
        self.ready && self.in_flight < IN_FLIGHT_PER_WORKER
    }
}

/// The slots.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    slots: Vec<Option<Slot>>,
    next_id: u32,
}

impl Pool {
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker runs (or is being spawned) in some slot.
    pub fn is_running(&self) -> bool {
        self.slots.iter().any(Option::is_some)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Workers held now.
    pub fn workers(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().flatten()
    }

    pub fn get(&self, slot: usize) -> Option<&Slot> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Slot> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// The slot of a live worker; `None` for one that was terminated.
    pub fn slot_of(&self, id: WorkerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|w| w.id == id))
    }

    pub fn by_id(&mut self, id: WorkerId) -> Option<&mut Slot> {
        self.slots.iter_mut().flatten().find(|w| w.id == id)
    }

    fn fresh_id(&mut self) -> WorkerId {
        let id = WorkerId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Fills `count` slots with new workers (to spawn), when none runs.
    pub fn fill(&mut self, count: usize) -> Vec<WorkerId> {
        if self.is_running() {
            return Vec::new();
        }
        self.slots.clear();
        (0..count.max(1))
            .map(|_| {
                let id = self.fresh_id();
                self.slots.push(Some(Slot::new(id)));
                id
            })
            .collect()
    }

    /// Puts a new worker (to spawn) in `slot`, in place of whatever was there.
    pub fn refill(&mut self, slot: usize) -> Option<WorkerId> {
        let id = self.fresh_id();
        let place = self.slots.get_mut(slot)?;
        *place = Some(Slot::new(id));
        Some(id)
    }

    /// Empties the slot of `id`, returning the slot it held.
    pub fn vacate(&mut self, id: WorkerId) -> Option<usize> {
        let slot = self.slot_of(id)?;
        if let Some(place) = self.slots.get_mut(slot) {
            *place = None;
        }
        Some(slot)
    }

    /// Empties every slot, returning the workers to terminate.
    pub fn clear(&mut self) -> Vec<WorkerId> {
        let ids = self.iter().map(|w| w.id).collect();
        self.slots.clear();
        ids
    }

    /// The worker to ask to load next: one started, not loading, not ready, and only when
    /// no other is loading. It is marked loading.
    pub fn next_to_load(&mut self) -> Option<WorkerId> {
        if self.iter().any(|w| w.loading) {
            return None;
        }
        let w = self
            .slots
            .iter_mut()
            .flatten()
            .find(|w| w.started && !w.loading && !w.ready)?;
        w.loading = true;
        Some(w.id)
    }

    /// The ready worker with the fewest jobs in hand.
    pub fn least_busy(&self) -> Option<WorkerId> {
        self.iter()
            .filter(|w| w.ready)
            .min_by_key(|w| w.in_flight)
            .map(|w| w.id)
    }

    /// Nothing in hand and nothing loading.
    pub fn is_idle(&self) -> bool {
        self.iter().all(|w| w.in_flight == 0 && !w.loading)
    }

    /// The load progress shown while no worker is ready.
    pub fn load_fraction(&self) -> f64 {
        self.iter().map(|w| w.load_fraction).fold(0.0, f64::max)
    }

    pub fn any_ready(&self) -> bool {
        self.iter().any(|w| w.ready)
    }
}
