//! SQLite implementation of [`Store`](super::Store). (Being written.)
