//! Seeded construction of modules.
//!
//! burn's CPU backends keep one global random generator and initialise parameters lazily, on
//! first use. Two threads building (or first using) models at once would interleave their
//! draws, so construction goes through one lock and every parameter is drawn before the lock
//! is released: a seed then always yields the same weights, also when tests run in parallel.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use std::sync::Mutex;

static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Forces lazy parameters to draw their initial values now.
struct Draw;

impl ModuleVisitor for Draw {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Builds a module with the device's generator seeded, holding the global init lock until
/// every parameter has its initial value.
pub fn seeded<M: Module>(device: &Device, seed: u64, build: impl FnOnce() -> M) -> M {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    let module = build();
    module.visit(&mut Draw);
    module
}

/// [`seeded`] for a fallible construction.
pub fn try_seeded<M: Module, E>(device: &Device, seed: u64, build: impl FnOnce() -> Result<M, E>) -> Result<M, E> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    let module = build()?;
    module.visit(&mut Draw);
    Ok(module)
}
