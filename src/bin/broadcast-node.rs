//! broadcast-node: one node of a Maelstrom broadcast cluster. Parses the
//! configuration, sets up logging to stderr, and runs the node's actors until
//! stdin ends.

use broadcast_actors::config::{Config, NotStarting};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(config) => config,
        Err(NotStarting::Info(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(NotStarting::Invalid(reason)) => {
            eprintln!("broadcast-node: {reason}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {} {} {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                record.args()
            )
        })
        .init();
    // An actor that panics would otherwise die alone and leave a node that
    // answers clients but never gossips to a peer again: better to stop
    // the whole process, loudly.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    log::info!("starting with {config:?}");
    match broadcast_actors::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("node failed: {e}");
            ExitCode::FAILURE
        }
    }
}
