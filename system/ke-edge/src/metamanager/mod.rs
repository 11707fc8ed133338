//! MetaManager (being written).
