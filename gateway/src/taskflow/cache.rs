//! The bounded cache of hot flows in front of SQLite: at most
//! `capacity` flows by id, evicted by CLOCK (second chance), so memory
//! does not grow with the number of flows stored.
//!
//! Rules (the store's correctness rests on them):
//! - Only committed state enters. The writer publishes every committed
//!   flow change (`publish`) after its commit and before it answers; a
//!   reader that missed loads the row from disk and offers it with
//!   `offer`.
//! - A load never overwrites newer state: each publish bumps the
//!   generation, and a reader takes the generation before its disk read
//!   (`generation`); `offer` keeps the load only when no publish since
//!   then changed (or deleted) that flow. The cache remembers which flows
//!   the last [`RECENT`] published changes touched; a load older than what
//!   it remembers is not kept. A load that raced a commit of its flow is
//!   answered to its reader (it read a committed state that was current
//!   when the read began) but not kept.
//! - So an entry is always the newest committed state of its flow, and a
//!   miss means "ask the disk", never "absent".

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;

use super::model::FlowEntry;

/// The default `tasks.cacheMaxFlows`: about 20 MiB of flows of 1 KiB.
pub const DEFAULT_CACHE_FLOWS: usize = 20_000;

/// Published changes remembered for judging loads (a few hundred
/// batches' worth; a disk read takes far less than that many commits).
const RECENT: usize = 4096;

pub(crate) struct FlowCache {
    capacity: usize,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Bumped by every publish.
    generation: u64,
    by_id: HashMap<Arc<str>, usize>,
    ring: Vec<Slot>,
    /// The CLOCK hand: the next slot considered for eviction.
    hand: usize,
    /// Flow id -> the generation of the last publish that changed it, for
    /// the last `RECENT` changes.
    changed: HashMap<Arc<str>, u64>,
    /// The same changes in publish order, to forget the oldest.
    order: VecDeque<(u64, Arc<str>)>,
    /// Loads taken before this generation cannot be judged: not kept.
    floor: u64,
}

struct Slot {
    id: Arc<str>,
    flow: Arc<FlowEntry>,
    /// Set by a hit, cleared when the hand passes: a slot is evicted only
    /// when it was not read for a whole turn of the hand.
    referenced: bool,
}

/// One committed flow change, as the writer publishes it.
pub(crate) enum Published<'a> {
    Put(&'a Arc<FlowEntry>),
    Deleted(&'a str),
}

impl FlowCache {
    /// A cache of at most `capacity` flows (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            slots: Mutex::new(Slots::default()),
        }
    }

    pub fn get(&self, flow_id: &str) -> Option<Arc<FlowEntry>> {
        let mut slots = self.slots.lock();
        let i = *slots.by_id.get(flow_id)?;
        let slot = &mut slots.ring[i];
        slot.referenced = true;
        Some(Arc::clone(&slot.flow))
    }

    /// The generation a reader takes before it reads a miss from disk.
    pub fn generation(&self) -> u64 {
        self.slots.lock().generation
    }

    /// Keeps `flow`, loaded from disk by a reader that took `generation`
    /// before its read, unless a commit published since changed it.
    pub fn offer(&self, generation: u64, flow: &Arc<FlowEntry>) {
        let mut slots = self.slots.lock();
        let changed_since = slots
            .changed
            .get(flow.id())
            .is_some_and(|g| *g > generation);
        if generation >= slots.floor && !changed_since {
            slots.put(self.capacity, flow);
        }
    }

    /// Publishes committed changes (the writer, after the commit).
    pub fn publish<'a>(&self, changes: impl IntoIterator<Item = Published<'a>>) {
        let mut slots = self.slots.lock();
        slots.generation += 1;
        for change in changes {
            let id = match change {
                Published::Put(flow) => {
                    slots.put(self.capacity, flow);
                    flow.id()
                }
                Published::Deleted(id) => {
                    slots.remove(id);
                    id
                }
            };
            slots.remember(id);
        }
    }

    /// How many flows the cache holds.
    pub fn len(&self) -> usize {
        self.slots.lock().ring.len()
    }
}

impl Slots {
    /// Records that the current generation changed `flow_id`.
    fn remember(&mut self, flow_id: &str) {
        let id: Arc<str> = Arc::from(flow_id);
        let generation = self.generation;
        self.changed.insert(Arc::clone(&id), generation);
        self.order.push_back((generation, id));
        while self.order.len() > RECENT {
            let Some((g, id)) = self.order.pop_front() else {
                break;
            };
            if self.changed.get(&id) == Some(&g) {
                self.changed.remove(&id);
            }
            // Every change after `g` is still remembered.
            self.floor = self.floor.max(g);
        }
    }

    fn put(&mut self, capacity: usize, flow: &Arc<FlowEntry>) {
        if let Some(&i) = self.by_id.get(flow.id()) {
            let slot = &mut self.ring[i];
            slot.flow = Arc::clone(flow);
            slot.referenced = true;
            return;
        }
        let slot = Slot {
            id: Arc::from(flow.id()),
            flow: Arc::clone(flow),
            referenced: false,
        };
        if self.ring.len() < capacity {
            self.by_id.insert(Arc::clone(&slot.id), self.ring.len());
            self.ring.push(slot);
            return;
        }
        let i = self.victim();
        self.by_id.remove(&self.ring[i].id);
        self.by_id.insert(Arc::clone(&slot.id), i);
        self.ring[i] = slot;
    }

    /// The slot to evict: the first one under the hand not read since the
    /// hand last passed it.
    fn victim(&mut self) -> usize {
        loop {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let i = self.hand;
            self.hand += 1;
            let slot = &mut self.ring[i];
            if !slot.referenced {
                return i;
            }
            slot.referenced = false;
        }
    }

    fn remove(&mut self, flow_id: &str) {
        let Some(i) = self.by_id.remove(flow_id) else {
            return;
        };
        self.ring.swap_remove(i);
        if let Some(moved) = self.ring.get(i) {
            self.by_id.insert(Arc::clone(&moved.id), i);
        }
    }
}
