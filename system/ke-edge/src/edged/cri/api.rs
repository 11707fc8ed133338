//! The CRI `runtime.v1` messages and clients, generated at build time (see `build.rs`) from
//! the vendored `proto/api.proto`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    reason = "generated code; the proto's comments are its documentation"
)]

tonic::include_proto!("runtime.v1");
