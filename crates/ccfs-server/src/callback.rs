//! The callback outbox delivery loop. (Being written.)
