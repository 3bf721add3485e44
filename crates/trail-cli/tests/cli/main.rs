//! Black-box acceptance tests of the `trail` binary: each test starts real
//! `trail serve` processes on ephemeral ports in their own temporary data
//! directories and drives them over HTTP and through the CLI.
//!
//! Backends. By default every server runs on the embedded sqlite store;
//! with `TRAIL_TEST_BACKEND=postgres` each fresh data directory gets its own
//! database in the cluster at `TRAIL_TEST_DATABASE_URL` instead (see
//! `harness.rs`), and `scripts/test` runs the suite both ways. Two name
//! prefixes select tests that belong to one backend only:
//!
//! - `sqlite_`: skipped on postgres (`--skip sqlite_`), because they work
//!   on the sqlite files themselves rather than through trail:
//!   - `durability::sqlite_records_table_is_append_only_from_the_shell`
//!     edits `trail.db` with the `sqlite3` shell to hit the append-only
//!     triggers and checks its WAL mode (postgres: `postgres::pg_app_role_*`
//!     and `postgres::pg_superuser_edit_*`);
//!   - `tamper::sqlite_untouched_copy_*` and every `tamper::sqlite_tamper_*`
//!     copy the data directory's `trail.db` and its WAL, drop its triggers
//!     and edit rows by sqlite rowid with the `sqlite3` shell (postgres:
//!     `postgres::pg_superuser_edit_is_caught_by_verify`).
//!
//!   (`content.rs` greps the store on both backends: the raw database files
//!   on sqlite, a `pg_dump` on postgres.)
//! - `pg_` (`postgres.rs`): postgres only, with databases of their own in
//!   `TRAIL_TEST_DATABASE_URL`, which they need: unset, they fail (they
//!   never pass by skipping). They run in the default run; the postgres run
//!   skips them (`--skip pg_`) so they do not run twice.

mod harness;

mod auth;
mod bad_input;
mod cli_commands;
mod config;
mod content;
mod durability;
mod independent;
mod ingest_query;
mod postgres;
mod retention;
mod sdk;
mod tamper;
mod transparency;
