//! Edged (being written).
