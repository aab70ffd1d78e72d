//! The export job runner. (Being written.)
