//! The `framehub` command: `demo` (the interactive demo hub), `serve` (a
//! hub for remote publishers), `pipe` (any
//! program's frames into a stream), `bench` (the benchmark suite) and
//! `soak` (the soak test).

/// Prints a line on standard output, ignoring a closed pipe (a reader that
/// went away must not stop the hub; `println!` would panic).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

/// [`say!`] for standard error.
macro_rules! esay {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod nats_args;
mod pipe;
mod run_demo;
mod serve;
mod y4m;

use framehub_bench::{bench, soak};

use clap::{Parser, Subcommand};

/// Stream live framebuffers to web browsers.
#[derive(Parser, Debug)]
#[command(name = "framehub", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the demo streams (Mandelbrot explorer, 60 fps plasma, live chart) on one port.
    Demo(run_demo::DemoArgs),
    /// Run a hub with no streams of its own: publishers anywhere claim names at /_/publish/<name>.
    Serve(serve::ServeArgs),
    /// Publish frames read from standard input (YUV4MPEG2 or raw RGBA/RGB) into a stream.
    Pipe(pipe::PipeArgs),
    /// Run the benchmark suite (hub in this process, load client in a child process).
    Bench(bench::BenchArgs),
    /// The benchmark's load client (started by `bench`).
    #[command(hide = true)]
    BenchClient(bench::ClientArgs),
    /// Run the soak test: churn, never-ack and misbehaving clients against one hub; checks frame rate, memory, panics, fds.
    Soak(soak::SoakArgs),
    /// The soak test's clients (started by `soak`).
    #[command(hide = true)]
    SoakClient(soak::SoakClientArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain of causes on one line, without a backtrace.
            esay!("framehub: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Demo(args) => rt.block_on(run_demo::run(args)),
        Command::Serve(args) => rt.block_on(serve::run(args)),
        Command::Pipe(args) => rt.block_on(pipe::run(args)),
        Command::Bench(args) => rt.block_on(bench::run(args)),
        Command::BenchClient(args) => rt.block_on(bench::run_client(args)),
        Command::Soak(args) => rt.block_on(soak::run(args)),
        Command::SoakClient(args) => rt.block_on(soak::run_client(args)),
    }
}
