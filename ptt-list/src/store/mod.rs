//! Persistence (placeholder while the backends are written).
