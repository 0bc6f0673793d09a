//! framehub's measuring tools, run by the `framehub` command:
//!
//! * [`bench`] (`framehub bench`): the benchmark suite — a hub in this
//!   process, its load client in a child process of the same binary
//!   (`framehub bench-client`), results as JSON lines, tables and charts
//!   (`docs/benchmarks.md`);
//! * [`soak`] (`framehub soak`): the soak test — churn, never-acking and
//!   misbehaving clients against one hub for minutes, judged on frame rate,
//!   memory, panics and file descriptors.
//!
//! A tool crate: its errors are reported to the user, never handled, so it
//! uses `anyhow` as the binary does. It lives apart from the `framehub`
//! binary so that the binary stays thin (issue 15).

#![deny(missing_docs)]

pub mod bench;
pub mod soak;
