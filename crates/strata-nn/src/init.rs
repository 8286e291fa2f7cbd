//! Seeded construction of modules.
//!
//! burn's CPU backends keep one global random generator, so two threads building models at
//! once would interleave their draws. Every seeded construction goes through one lock so a
//! seed always yields the same weights, also when tests run in parallel.

use burn::tensor::Device;
use std::sync::Mutex;

static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Runs `build` with the device's generator seeded, holding the global init lock.
pub fn seeded<T>(device: &Device, seed: u64, build: impl FnOnce() -> T) -> T {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    build()
}
