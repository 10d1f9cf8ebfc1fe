//! Runs an exec provider's command under its limits: overall timeout, no-output timeout and an
//! output cap, killing the command's whole process group with SIGKILL when one is hit.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

/// The bounds a run is held to.
pub(super) struct Limits {
    pub(super) timeout: Duration,
    /// Longest silence (no stdout or stderr bytes) while the output streams are open.
    pub(super) no_output: Duration,
    /// Cap on stdout and stderr bytes together.
    pub(super) max_output_bytes: usize,
}

/// Why a run did not finish normally.
#[derive(Debug)]
pub(super) enum RunError {
    Spawn(io::Error),
    TimedOut,
    NoOutput,
    OutputTooLarge,
    Wait(io::Error),
}

/// A run that ended by itself: its exit status and its stdout (stderr is counted, never kept).
pub(super) struct Finished {
    pub(super) status: ExitStatus,
    pub(super) stdout: Vec<u8>,
}

enum Event {
    Stdout(Vec<u8>),
    Stderr(usize),
    Closed,
}

/// Spawns `cmd` in its own process group with piped stdio, writes `input` to its stdin, and
/// collects its stdout within `limits`.
pub(super) fn run(cmd: &mut Command, input: &[u8], limits: &Limits) -> Result<Finished, RunError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = spawn(cmd).map_err(RunError::Spawn)?;
    let start = Instant::now();
    let result = supervise(&mut child, input, limits, start);
    if result.is_err() {
        kill_group(&mut child);
    }
    result
}

/// Spawns, retrying briefly on ETXTBSY: the command file can still be open for writing in a
/// process forked at the moment it was written or replaced (an upgrade in progress).
fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                thread::sleep(Duration::from_millis(10 * attempt));
            }
            result => return result,
        }
    }
}

fn supervise(
    child: &mut Child,
    input: &[u8],
    limits: &Limits,
    start: Instant,
) -> Result<Finished, RunError> {
    let (tx, rx) = mpsc::channel();
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, true, tx.clone()).map_err(RunError::Spawn)?;
        open += 1;
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, false, tx).map_err(RunError::Spawn)?;
        open += 1;
    }
    if let Some(mut stdin) = child.stdin.take() {
        // The request is small (well under a pipe buffer), so this write does not block; a
        // command that exits or closes stdin without reading it is not an error here.
        let _ = stdin.write_all(input);
    }
    let deadline = start + limits.timeout;
    let mut quiet_deadline = start + limits.no_output;
    let mut stdout = Vec::new();
    let mut total = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(RunError::TimedOut);
        }
        if open == 0 {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(Finished { status, stdout }),
                Ok(None) => thread::sleep((deadline - now).min(Duration::from_millis(5))),
                Err(e) => return Err(RunError::Wait(e)),
            }
            continue;
        }
        if now >= quiet_deadline {
            return Err(RunError::NoOutput);
        }
        match rx.recv_timeout(deadline.min(quiet_deadline) - now) {
            Ok(Event::Stdout(bytes)) => {
                total += bytes.len();
                stdout.extend_from_slice(&bytes);
            }
            Ok(Event::Stderr(n)) => total += n,
            Ok(Event::Closed) => open -= 1,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => open = 0,
        }
        if total > limits.max_output_bytes {
            return Err(RunError::OutputTooLarge);
        }
        quiet_deadline = Instant::now() + limits.no_output;
    }
}

/// Forwards one stream to the supervisor until it closes (or the supervisor is gone).
fn spawn_reader<R: Read + Send + 'static>(
    mut stream: R,
    is_stdout: bool,
    tx: Sender<Event>,
) -> io::Result<()> {
    thread::Builder::new()
        .name("secret-exec-io".to_owned())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let event = match stream.read(&mut buf) {
                    Ok(0) => Event::Closed,
                    Ok(n) if is_stdout => Event::Stdout(buf[..n].to_vec()),
                    Ok(n) => Event::Stderr(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => Event::Closed,
                };
                let closed = matches!(event, Event::Closed);
                if tx.send(event).is_err() || closed {
                    return;
                }
            }
        })
        .map(drop)
}

/// SIGKILLs the child's process group (the child and anything it started that stayed in the
/// group), then reaps the child.
#[allow(unsafe_code)]
fn kill_group(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions. The child was spawned with
        // process_group(0), so its pid is its group id; it is not reaped yet (it is reaped just
        // below), so the group id cannot have been reused by an unrelated process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
