//! The command line every server accepts: [`Opt`].

use clap::Parser;

/// Command-line options of a server.
///
/// Parse them with [`Opt::parse_args`], or flatten them into a program's own
/// clap struct:
///
/// ```
/// use clap::Parser;
/// use pingora_core::server::Opt;
///
/// #[derive(Parser)]
/// struct MyArgs {
///     #[command(flatten)]
///     server: Opt,
///     /// An option of my own.
///     #[arg(long)]
///     verbose: bool,
/// }
///
/// let args = MyArgs::parse_from(["prog", "-c", "conf.yaml", "-u", "--verbose"]);
/// assert!(args.server.upgrade && args.verbose);
/// assert_eq!(args.server.conf.as_deref(), Some("conf.yaml"));
/// ```
#[derive(Parser, Debug, Default, Clone, PartialEq, Eq)]
#[command(about = "A server built with pingora-rs")]
#[non_exhaustive]
pub struct Opt {
    /// Take the listening sockets over from the running server (graceful
    /// upgrade) instead of binding them.
    #[arg(short, long)]
    pub upgrade: bool,

    /// Run in the background.
    #[arg(short, long)]
    pub daemon: bool,

    /// Accepted and ignored, so that test binaries run with `--nocapture`
    /// can parse their command line as an `Opt`.
    #[arg(long)]
    pub nocapture: bool,

    /// Load and validate the config file, print it, and exit: 0 when it is
    /// valid, 1 when not.
    #[arg(short, long)]
    pub test: bool,

    /// The YAML config file.
    #[arg(short, long, value_name = "FILE")]
    pub conf: Option<String>,
}

impl Opt {
    /// Parse the process's command line; print usage and exit on `--help`
    /// or on an error.
    pub fn parse_args() -> Self {
        Self::parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags() {
        let opt = Opt::parse_from(["p", "--conf", "a.yaml", "-d", "-t", "--nocapture"]);
        assert_eq!(opt.conf.as_deref(), Some("a.yaml"));
        assert!(opt.daemon && opt.test && opt.nocapture && !opt.upgrade);
        assert_eq!(Opt::parse_from(["p"]), Opt::default());
    }

    #[test]
    fn help_lists_every_option() {
        let help = Opt::command().render_help().to_string();
        for flag in ["--conf", "--daemon", "--test", "--upgrade", "--nocapture"] {
            assert!(help.contains(flag), "{flag} missing from {help}");
        }
    }

    #[test]
    fn unknown_flag_is_an_error() {
        assert!(Opt::try_parse_from(["p", "--bogus"]).is_err());
    }
}
