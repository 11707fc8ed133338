//! Certificates (being written).
