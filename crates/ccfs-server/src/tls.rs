//! TLS certificate loading and the self-signed default. (Being written.)
