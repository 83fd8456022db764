//! Process limits set at start-up.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raise the soft limit on open files to the hard limit: a proxy holds two
/// descriptors per proxied connection, and the usual soft default (1024)
/// is far below what it can serve. The values are logged.
pub(crate) fn raise_nofile() {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("cannot read RLIMIT_NOFILE: {e}");
            return;
        }
    };
    if soft >= hard {
        log::info!("RLIMIT_NOFILE: {soft} open files (the hard limit)");
        return;
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => log::info!("RLIMIT_NOFILE: raised from {soft} to the hard limit {hard}"),
        // Some systems (macOS) refuse an unlimited soft limit.
        Err(e) => log::warn!("RLIMIT_NOFILE: {soft} open files, cannot raise to {hard}: {e}"),
    }
}
