//! The HTTP interfaces. (Being written.)
