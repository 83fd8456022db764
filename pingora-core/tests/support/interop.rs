//! Finding the real peers (curl, nghttp, h2load) that interop tests run.

use std::process::Command;

/// Whether `tool` runs. When it does not, prints a notice so the skipped
/// test is visible, and fails instead when `PINGORA_REQUIRE_INTEROP` is
/// set: CI installs the peers and sets it, so a missing one cannot pass
/// silently there.
pub(crate) fn tool_available(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("notice: {tool} not found, skipping its interop test");
        assert!(
            std::env::var_os("PINGORA_REQUIRE_INTEROP").is_none(),
            "PINGORA_REQUIRE_INTEROP is set but {tool} is missing"
        );
    }
    ok
}
