//! The node actor: owns the swarm, the replica and the roles; one `select!` loop; the handle.

pub mod handle;

pub use handle::{Command, InferenceEvent, NodeHandle, Query, QueryError, SubmitResult};
