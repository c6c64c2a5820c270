//! Every case of the bad-input corpus (`tests/corpus`) through the `hlfp` binary: each must end
//! the way the case says (a clear error with exit code 1 or 2, or success), never with a panic
//! or a signal, within a time limit and a peak memory bound.

mod corpus;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corpus::{Case, Exit};

/// Peak resident memory any case may reach.
const MAX_RSS_MB: i64 = 1024;

/// Wall time after which a case counts as hung and is killed.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Exit status and peak RSS (kB) of `pid`, killing it after [`TIMEOUT`].
fn wait_with_rusage(pid: i32) -> (i32, i64) {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: plain FFI calls on a child of this process; `ru` is written by the kernel.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            return (status, ru.ru_maxrss);
        }
        assert!(r == 0, "wait4 failed");
        if start.elapsed() > TIMEOUT {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What went wrong with a case, if anything.
fn run_case(c: &Case, dir: &Path, root: &Path) -> Option<String> {
    let stderr_path = dir.join("stderr.txt");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hlfp"));
    cmd.args(&c.args)
        .current_dir(root)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    match &c.stdin {
        Some(bytes) => {
            let p = dir.join("stdin.bin");
            std::fs::write(&p, bytes).unwrap();
            cmd.stdin(std::fs::File::open(p).unwrap());
        }
        None => {
            cmd.stdin(Stdio::null());
        }
    }
    if c.closed_stdout {
        let mut fds = [0; 2];
        // SAFETY: pipe() fills two fresh descriptors; the read end is closed at once so the
        // child writes into a pipe without a reader, and the write end is handed to it.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            cmd.stdout(<std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]));
        }
    } else {
        cmd.stdout(Stdio::null());
    }
    // Reaped by wait4 below, which also reports the child's peak RSS.
    #[allow(clippy::zombie_processes)]
    let pid = cmd.spawn().unwrap().id() as i32;
    drop(cmd); // closes our copy of a pipe's write end
    let (status, rss_kb) = wait_with_rusage(pid);
    let status = std::process::ExitStatus::from_raw(status);
    let mut stderr = String::new();
    std::fs::File::open(&stderr_path)
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let tail: String = stderr
        .chars()
        .rev()
        .take(600)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let fail = |why: String| Some(format!("{}: {why}\n    stderr: {tail}", c.name));
    if stderr.contains("panicked") {
        return fail("panicked".into());
    }
    let ok = matches!(
        (c.exit, status.code(), status.signal()),
        (Exit::Ok, Some(0), _)
            | (Exit::Error, Some(1 | 2), _)
            | (Exit::PipeClosed, Some(0), _)
            | (Exit::PipeClosed, None, Some(libc::SIGPIPE))
    );
    if !ok {
        return fail(format!("expected {:?}, got {status}", c.exit));
    }
    let lower = stderr.to_lowercase();
    for want in &c.stderr_has {
        if !lower.contains(&want.to_lowercase()) {
            return fail(format!("stderr lacks {want:?}"));
        }
    }
    if rss_kb / 1024 > MAX_RSS_MB {
        return fail(format!(
            "peak RSS {} MB over {MAX_RSS_MB} MB",
            rss_kb / 1024
        ));
    }
    None
}

#[test]
fn every_corpus_case_ends_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus::generate(dir.path(), root);
    let mut names = std::collections::HashSet::new();
    assert!(
        cases.iter().all(|c| names.insert(c.name.clone())),
        "duplicate case names"
    );
    let filter = std::env::var("HLFP_CORPUS_FILTER").unwrap_or_default();
    let failures: Vec<String> = cases
        .iter()
        .filter(|c| c.name.contains(&filter))
        .filter_map(|c| run_case(c, dir.path(), root))
        .collect();
    println!(
        "bad-input corpus: {} cases, {} failed",
        cases.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
