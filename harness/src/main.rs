//! `fleet`: runs scenario files on the simulator and writes reports.

fn main() {}
