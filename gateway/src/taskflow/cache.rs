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
//!   generation, and `offer` inserts only when no publish happened since
//!   the reader took the generation before its disk read (`generation`).
//!   A load that raced a commit is answered to its reader (it read a
//!   committed state that was current when the read began) but not kept.
//! - So an entry is always the newest committed state of its flow, and a
//!   miss means "ask the disk", never "absent".

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::model::FlowEntry;

/// The default `tasks.cacheMaxFlows`: about 20 MiB of flows of 1 KiB.
pub const DEFAULT_CACHE_FLOWS: usize = 20_000;

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
    /// before its read, unless a commit was published since.
    pub fn offer(&self, generation: u64, flow: &Arc<FlowEntry>) {
        let mut slots = self.slots.lock();
        if slots.generation == generation {
            slots.put(self.capacity, flow);
        }
    }

    /// Publishes committed changes (the writer, after the commit).
    pub fn publish<'a>(&self, changes: impl IntoIterator<Item = Published<'a>>) {
        let mut slots = self.slots.lock();
        slots.generation = slots.generation.wrapping_add(1);
        for change in changes {
            match change {
                Published::Put(flow) => slots.put(self.capacity, flow),
                Published::Deleted(id) => slots.remove(id),
            }
        }
    }

    /// How many flows the cache holds.
    pub fn len(&self) -> usize {
        self.slots.lock().ring.len()
    }
}

impl Slots {
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
