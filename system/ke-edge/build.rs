//! Generates the CRI `runtime.v1` client (RuntimeService and ImageService) from the vendored
//! `proto/api.proto`. protox parses the proto in Rust, so building needs no system `protoc`.

use std::io;

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["proto/api.proto"], ["proto"])
        .map_err(|e| io::Error::other(format!("parsing proto/api.proto: {e}")))?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(fds)
}
