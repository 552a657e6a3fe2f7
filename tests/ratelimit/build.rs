//! Compiles the vendored Envoy protos with protox (pure Rust: no protoc binary).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["envoy/service/ratelimit/v3/rls.proto"];
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
