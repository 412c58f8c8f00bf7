//! Tests and the load benchmark of the `tickets` module live under
//! `tests/` and `benches/`; this crate has no code of its own.
