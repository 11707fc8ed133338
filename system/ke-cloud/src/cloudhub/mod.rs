//! CloudHub (being written).
