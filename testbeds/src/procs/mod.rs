//! The multi-process testbed: real `chorus node run` processes on loopback (or in network
//! namespaces), generated configs, kill -9 and restart, agreement checks.
//!
//! - [`plan`]: one description of a test network (roles, topics, timing) for in-process and
//!   multi-process runs;
//! - [`cluster`]: the run directory and the child processes (killed on drop);
//! - [`http`]: a tiny HTTP/1.1 client for the nodes' REST API;
//! - [`check`]: agreement checks (heads per height, convergence, inferences, supply);
//! - [`run`]: the `procs` command.

pub mod check;
pub mod cluster;
pub mod http;
pub mod plan;
pub mod run;
