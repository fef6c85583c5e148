//! The `vhost-user-spice` daemon: parse the command line, build the parts, run.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vhost_user_spice::config::{Args, Config, CAPABILITIES};

/// Log filter when neither `--log` nor RUST_LOG is given.
const DEFAULT_LOG: &str = "info";

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_capabilities {
        println!("{CAPABILITIES}");
        return ExitCode::SUCCESS;
    }
    init_logging(args.log.as_deref());
    let result = Config::try_from(args)
        .map_err(anyhow::Error::from)
        .and_then(|config| vhost_user_spice::app::run(config).map_err(anyhow::Error::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Straight to stderr, not through the log filter: setup errors must always show.
            eprintln!("vhost-user-spice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    let filter = match filter {
        Some(directives) => EnvFilter::try_new(directives),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(DEFAULT_LOG)),
    }
    .unwrap_or_else(|e| {
        eprintln!("vhost-user-spice: bad log filter ({e}); using {DEFAULT_LOG:?}");
        EnvFilter::new(DEFAULT_LOG)
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
