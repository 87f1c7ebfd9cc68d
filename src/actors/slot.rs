//! A late-bound actor address. The supervisor replaces an actor that failed
//! with a fresh one at a new address; actors that talk to it look it up in
//! its slot at the moment they send, so they never hold a dead address.

use std::sync::{Arc, Mutex};

use actix::{Actor, Addr};

pub struct Slot<A: Actor>(Arc<Mutex<Option<Addr<A>>>>);

impl<A: Actor> Slot<A> {
    pub fn empty() -> Self {
        Slot(Arc::new(Mutex::new(None)))
    }

    pub fn set(&self, addr: Addr<A>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr);
    }

    /// The current address, if the actor runs.
    pub fn get(&self) -> Option<Addr<A>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|addr| addr.connected())
            .cloned()
    }
}

impl<A: Actor> Clone for Slot<A> {
    fn clone(&self) -> Self {
        Slot(Arc::clone(&self.0))
    }
}

impl<A: Actor> Default for Slot<A> {
    fn default() -> Self {
        Slot::empty()
    }
}
