//! One file per `hlfp` subcommand: argument parsing and I/O; the work is in the library.

pub mod cost;
pub mod eval;
