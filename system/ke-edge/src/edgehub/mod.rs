//! EdgeHub (being written).
