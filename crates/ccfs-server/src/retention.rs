//! Expiry of old files and housekeeping rows. (Being written.)
