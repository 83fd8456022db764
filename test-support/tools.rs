//! Finding and running the real peers of interop tests (curl, nghttp,
//! h2load...), shared by the crates' test suites (each includes this file
//! with `#[path]`).

use std::process::{Command, Output};

/// Run `tool args` off the runtime, bounded to `limit_secs` by coreutils'
/// `timeout`; returns the output, asserting success.
pub(crate) async fn run_tool(tool: &str, args: Vec<String>, limit_secs: u32) -> Output {
    let tool = tool.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .arg(limit_secs.to_string())
            .arg(&tool)
            .args(&args)
            .output()
            .expect("run timeout(1)")
    })
    .await
    .expect("tool task");
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Whether `tool` runs. When it does not, prints a notice so the skipped
/// test is visible, and fails instead when `PINGORA_REQUIRE_INTEROP` is
/// set: CI installs the peers and sets it, so a missing one cannot pass
/// silently there.
pub(crate) fn tool_available(tool: &str) -> bool {
    // `--version`, or `-V` (socat) or `-v` (haproxy) for the tools
    // without it.
    let ok = ["--version", "-V", "-v"].iter().any(|flag| {
        Command::new(tool)
            .arg(flag)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        eprintln!("notice: {tool} not found, skipping its interop test");
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but {tool} is missing"
        );
    }
    ok
}
