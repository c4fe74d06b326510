//! One module per command group.

pub mod genesis;
pub mod key;
pub mod math;
