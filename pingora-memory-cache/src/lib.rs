//! A typed in-memory cache for user code (in progress).
