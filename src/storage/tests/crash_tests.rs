//! kill -9 tests.
