//! strata's one integration-test binary: every suite is a module, so the test build links
//! burn once instead of once per suite.

mod architecture;
mod bad_input;
mod cli;
mod common;
mod data;
mod defaults;
mod integrity;
mod interop;
mod methods;
mod nn_shapes_and_weights;
mod resume;
mod reuse;
mod train_invariants;
