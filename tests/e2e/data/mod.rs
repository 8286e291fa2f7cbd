//! strata-data's readers against the bundled data and broken inputs.

mod bad_input;
mod common;
mod real_data;
