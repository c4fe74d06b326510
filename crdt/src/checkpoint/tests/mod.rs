//! Tests across modules: exact effects of one engine, and simulated networks.

mod fixture;

mod bench;
mod codec;
mod engine;
mod scenarios;
mod screen;
