//! Wire-level tests of `ke-proto`, one binary for the whole area:
//! - `golden`: the frames of the reference's Appendix A decode to the expected typed values and
//!   re-encode to equal JSON;
//! - `ack_table`: the §2.4 ACK vs no-ACK rules, one row per rule;
//! - `resource_path`: resource string forms and the node prefix;
//! - `props`: property tests (round trips, decode never panics, size limit).

mod ack_table;
mod golden;
mod props;
mod resource_path;
