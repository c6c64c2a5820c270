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

/// Whether log lines get ANSI colours: only when stderr is a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
fn log_colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
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
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(log_colours(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::ffi::OsStr;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(log_colours(true, None));
        assert!(
            log_colours(true, Some(OsStr::new(""))),
            "an empty NO_COLOR is unset"
        );
        assert!(!log_colours(true, Some(OsStr::new("1"))));
        assert!(!log_colours(false, None));
        assert!(!log_colours(false, Some(OsStr::new("1"))));
    }

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hlfp").chain(line.split_whitespace()))
    }

    /// Each pair: a command line that clap must refuse because one flag would silently
    /// override or void another.
    #[test]
    fn overridden_flags_are_refused() {
        let mut accepted = Vec::new();
        for line in [
            "demo --ttl-ms 5000 --cue-ttl-ms 6000",
            "bench --plot p.png --no-plot",
            "bench --memory --iters 5",
            "bench --memory --pytorch p.json",
            "train --data d --resume --lr 0.1",
            "train --data d --resume --precision bf16",
            "train --data d --resume --variant resnet18",
            "train --data d --no-randaugment --magnitude 5",
            "cost --table --variant resnet50",
            "listen --bench --wav a.wav",
            "eval-audio --data d --snr-db 10",
            "eval-audio --data d --latency --sweep-on 0.5",
            "eval-audio --data d --sweep-min-on 2",
            "run --camera 0 --loop",
            "run --frames d --resolution 320x240",
            "run --bag b.mcap --fps 5",
            "run --bag b.mcap --loop",
            "run --bag b.mcap --every-frame --rate 2",
            "run --frames d --rate 2",
            "run --frames d --cue-topic /c",
            "run --bag b.mcap --audio-rate 48000",
        ] {
            let err = match parse(line) {
                Ok(_) => {
                    accepted.push(line);
                    continue;
                }
                Err(e) => e,
            };
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::ArgumentConflict
                        | clap::error::ErrorKind::MissingRequiredArgument
                ),
                "{line:?}: {err}"
            );
        }
        assert!(accepted.is_empty(), "accepted: {accepted:?}");
    }

    #[test]
    fn the_refused_flags_still_work_alone() {
        for line in [
            "demo --cue-ttl-ms 6000",
            "demo --ttl-ms 6000",
            "bench --no-plot",
            "bench --memory --classes 10 --active 2",
            "train --data d --resume --epochs 40",
            "train --data d --no-randaugment",
            "cost --table",
            "listen --bench",
            "eval-audio --data d --latency --snr-db 10",
            "eval-audio --data d --sweep-on 0.5 --sweep-min-on 1,2",
            "run --camera 0 --resolution 320x240",
            "run --frames d --loop",
            "run --bag b.mcap --rate 2 --audio-topic /a --audio-rate 48000",
            "run --bag b.mcap --every-frame --record r.mcap",
        ] {
            if let Err(e) = parse(line) {
                panic!("{line:?}: {e}");
            }
        }
    }

    #[test]
    fn demo_cue_ttl_is_the_one_ttl_flag_with_the_demo_default() {
        let ttl = |line: &str| match parse(line).unwrap().command {
            Command::Demo(a) => a.vision.ttl_ms,
            _ => unreachable!(),
        };
        assert_eq!(ttl("demo"), 12_000);
        assert_eq!(ttl("demo --cue-ttl-ms 6000"), 6000);
        assert_eq!(ttl("demo --ttl-ms 7000"), 7000);
        let classify = match parse("classify --image x.jpg").unwrap().command {
            Command::Classify(a) => a.vision.ttl_ms,
            _ => unreachable!(),
        };
        assert_eq!(classify, 3000, "other commands keep their default");
    }
}
