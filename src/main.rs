//! `hlfp`: the command line for HLFP models, audio cues and guided search (no ROS needed).

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hlfp",
    version,
    about = "HLFP vision models with cutouts and gains, audio cues and guided search"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parameters and MACs of a variant, class count and cutout.
    Cost(cli::cost::Args),
    /// Evaluate a model on an ImageFolder: top-1, per class, cutouts, attention gains, confusion.
    Eval(cli::eval::Args),
    /// Batch-1 CPU latency of ResNet50 and HLFP-small cutouts, or peak RSS of a cutout load (--memory).
    Bench(cli::bench::Args),
    /// The one-command cross-modal demo: a sound cues the vision model (report + timeline PNG).
    Demo(cli::demo::Args),
    /// The guided pipeline without ROS: frames (folder or camera) + cues (WAV, mic or stdin).
    Run(cli::run::Args),
    /// Train a model on an ImageFolder (checkpoints, resume, metrics log, curves.png).
    Train(cli::train::Args),
    /// Redraw the training curves PNG of a run from its metrics.jsonl.
    Curves(cli::train::CurvesArgs),
    /// Classify one image, optionally with cues (`--cue cat`).
    Classify(cli::classify::Args),
    /// Train the audio cue classifier on labelled clips and write weights, card and held-out list.
    TrainAudio(cli::train_audio::Args),
    /// Stream a WAV file or a microphone through the audio cue detector; print events and cues.
    Listen(cli::listen::Args),
    /// Evaluate the streaming audio detector on labelled clips (recall, false cues, latency).
    EvalAudio(cli::eval_audio::Args),
}

fn main() -> anyhow::Result<()> {
    // Rust ignores SIGPIPE, so `hlfp cost --table | head` made `println!` panic once `head` had
    // closed the pipe. Like any Unix filter, end quietly instead (killed by SIGPIPE).
    #[cfg(target_os = "linux")]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Tensor loops allocate per op: keep freed memory in the heap (see hlfp::alloc).
    hlfp::alloc::retain_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::Cost(args) => cli::cost::run(args),
        Command::Eval(args) => cli::eval::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Run(args) => cli::run::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Curves(args) => cli::train::curves(args),
        Command::Classify(args) => cli::classify::run(args),
        Command::TrainAudio(args) => cli::train_audio::run(args),
        Command::Listen(args) => cli::listen::run(args),
        Command::EvalAudio(args) => cli::eval_audio::run(args),
    }
}
