//! One file per `hlfp` subcommand: argument parsing and I/O; the work is in the library.

pub mod bench;
pub mod classify;
pub mod common;
pub mod cost;
pub mod demo;
pub mod eval;
pub mod eval_audio;
pub mod listen;
pub mod run;
pub mod run_bag;
pub mod train;
pub mod train_audio;
