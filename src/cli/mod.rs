//! Subcommands of the `roost` binary that live in files of their own (one file a command
//! or a group of related commands). `main.rs` keeps the `Command` enum and the dispatch;
//! each file here holds its commands' `argh` structs and their `run` functions. Private
//! helpers of `main.rs` (`open_existing`, `account`, `read_password`, …) are visible here
//! as `crate::name`.

pub mod backup;
pub mod check;
pub mod circle;
pub mod invite;
pub mod role;
