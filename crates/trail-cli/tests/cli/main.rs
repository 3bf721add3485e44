//! Black-box acceptance tests of the `trail` binary: each test starts real
//! `trail serve` processes on ephemeral ports in their own temporary data
//! directories and drives them over HTTP and through the CLI.

mod harness;

mod auth;
mod bad_input;
mod cli_commands;
mod config;
mod content;
mod durability;
mod independent;
mod ingest_query;
mod tamper;
mod transparency;
