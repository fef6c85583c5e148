//! The `vhost-user-spice` daemon: parse the command line, load the configuration, run.

use std::process::ExitCode;

use clap::Parser;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use vhost_user_spice::config::{Args, Config, Environment, CAPABILITIES};
use vhost_user_spice::logging;
use vhost_user_spice::systemd::ServiceEnv;

/// Log filter when neither `--log` (or `log` in the file) nor RUST_LOG is given.
const DEFAULT_LOG: &str = "info";

fn main() -> ExitCode {
    vhost_user_spice::alloc_tuning::keep_freed_buffers();
    let args = Args::parse();
    if args.print_capabilities {
        // Must be fast and change nothing: libvirt runs it at every domain start.
        println!("{CAPABILITIES}");
        return ExitCode::SUCCESS;
    }
    // SAFETY: no thread has been started yet (clap and the code above spawn none).
    let service = match unsafe { ServiceEnv::take() } {
        Ok(service) => service,
        Err(e) => return fail(&e),
    };
    let env = Environment::from_process();
    let config = match Config::load(&args, &env, &service.activated) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    init_logging(config.log.as_deref());
    if let Some(domain) = &env.libvirt_domain {
        info!(domain, "Started by libvirt");
    }
    if let Some(path) = &config.config_file {
        info!(file = %path.display(), "Configuration file read");
    }
    for warning in config
        .warnings()
        .into_iter()
        .chain(service.notify_error.clone())
    {
        warn!("{warning}");
    }
    match vhost_user_spice::app::run_service(config, service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Straight to stderr, not through the log filter: setup errors must always show.
fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut message = format!("vhost-user-spice: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    if logging::stderr_discarded() {
        // Started by libvirt: the message would be lost. Logging may not be set up yet (the
        // configuration failed), so with the default filter.
        logging::init(EnvFilter::new(DEFAULT_LOG));
        error!("{message}");
    }
    ExitCode::FAILURE
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
    logging::init(filter);
}
