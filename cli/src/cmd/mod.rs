//! One module per command group.

pub mod api;
pub mod genesis;
pub mod gov;
pub mod import;
pub mod join;
pub mod key;
pub mod math;
pub mod node;
pub mod read;
pub mod store;
pub mod verify;
pub mod write;
