//! maelstrom-sim: command-line entry of the harness. Parses arguments, runs
//! one test on a tokio runtime, and makes sure no node process outlives the
//! harness, whether the test ends, aborts, or is interrupted; or serves the
//! store's web view.

use maelstrom_sim::cli::{parse, Parsed};
use maelstrom_sim::process::kill_all_nodes;
use maelstrom_sim::run::{run, EXIT_ABORTED, EXIT_BAD_ARGS};
use maelstrom_sim::serve::{serve, ServeConfig};

fn main() {
    let config = match parse(std::env::args_os()) {
        Parsed::Run(config) => config,
        Parsed::Serve(config) => std::process::exit(serve_store(config)),
        Parsed::Print(text) => {
            print!("{text}");
            std::process::exit(0);
        }
        Parsed::Bad(reason) => {
            eprintln!("maelstrom-sim: {reason}");
            std::process::exit(EXIT_BAD_ARGS);
        }
    };
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all_nodes();
        default_hook(info);
    }));
    let runtime = runtime();
    let code = runtime.block_on(async {
        tokio::select! {
            code = run(&config) => code,
            signal = interrupted() => {
                kill_all_nodes();
                eprintln!("maelstrom-sim: interrupted by {signal}; nodes killed, test aborted");
                EXIT_ABORTED
            }
        }
    });
    kill_all_nodes();
    // Dropping the runtime could wait on blocked pumps; the nodes are dead
    // and every file is written, so leave at once.
    std::process::exit(code);
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot start the runtime: {e}");
            std::process::exit(EXIT_ABORTED);
        }
    }
}

/// `serve`: the web view, until the process is interrupted.
fn serve_store(config: ServeConfig) -> i32 {
    let addr = config.addr;
    match runtime().block_on(serve(config)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("maelstrom-sim: cannot serve on {addr}: {e}");
            EXIT_ABORTED
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
