//! Certificate bootstrap (being written).
