//! A child process whose exit and output lines are events to wait on.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A spawned child. Dropping it kills it (SIGKILL) and reaps it.
pub(crate) struct Process {
    child: Child,
    /// Fires once the child has exited. In a mutex so that a `Gateway`
    /// can be shared by the threads of a test.
    exited: Mutex<mpsc::Receiver<()>>,
    status: Option<ExitStatus>,
}

impl Process {
    pub fn spawn(cmd: &mut Command) -> Process {
        let child = cmd.spawn().expect("spawn the child process");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            wait_exited(pid);
            let _ = tx.send(());
        });
        Process {
            child,
            exited: Mutex::new(exited),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines the child writes to its piped stdout.
    pub fn stdout(&mut self) -> Output {
        Output::collect(self.child.stdout.take().expect("stdout is piped"))
    }

    /// The lines the child writes to its piped stderr.
    pub fn stderr(&mut self) -> Output {
        Output::collect(self.child.stderr.take().expect("stderr is piped"))
    }

    /// Sends `sig` to the child, which has not been reaped, so the id is
    /// still its own.
    pub fn signal(&self, sig: i32) {
        assert!(self.status.is_none(), "the process was already waited for");
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) takes no pointers; the pid is our unreaped child.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// The exit status, waiting up to `limit` for the exit; `None` if the
    /// child is still running then.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            let exited = self.exited.lock().unwrap().recv_timeout(limit);
            match exited {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
                Err(RecvTimeoutError::Timeout) => return None,
            }
            self.status = Some(self.child.wait().expect("reap the child"));
        }
        self.status
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.wait(Duration::from_secs(30));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Blocks until child `pid` has exited. The child is left unreaped
/// (`WNOWAIT`), so its id cannot be reused before `Child::wait` reaps it.
fn wait_exited(pid: u32) {
    let id: libc::id_t = pid;
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for the kernel to
        // fill in.
        #[allow(unsafe_code)]
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, exclusive siginfo_t for the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// What a child writes to one pipe. Reads happen under one lock, both by
/// a thread that wakes whenever the pipe is readable (then notifies
/// waiters) and by every caller before it looks: so what a caller sees
/// includes everything the child wrote before the call.
#[derive(Clone)]
pub(crate) struct Output(Arc<Shared>);

struct Shared {
    state: Mutex<Collected>,
    changed: Condvar,
}

struct Collected {
    pipe: File,
    bytes: Vec<u8>,
    closed: bool,
}

impl Collected {
    /// Reads all the pipe holds now, without blocking.
    fn drain(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while !self.closed {
            match self.pipe.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => self.closed = true,
            }
        }
    }
}

impl Output {
    fn collect(pipe: impl Into<OwnedFd>) -> Output {
        let pipe = File::from(pipe.into());
        set_nonblocking(&pipe);
        let fd = pipe.as_raw_fd();
        let shared = Arc::new(Shared {
            state: Mutex::new(Collected {
                pipe,
                bytes: Vec::new(),
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let reader = Arc::clone(&shared);
        // The thread's `Arc` keeps the pipe, and so `fd`, open while it runs.
        std::thread::spawn(move || loop {
            wait_readable(fd);
            let mut state = reader.state.lock().unwrap();
            state.drain();
            let closed = state.closed;
            drop(state);
            reader.changed.notify_all();
            if closed {
                return;
            }
        });
        Output(shared)
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        let mut state = self.0.state.lock().unwrap();
        state.drain();
        String::from_utf8_lossy(&state.bytes).into_owned()
    }

    /// The first line that contains `needle`, as soon as it is written;
    /// `None` when the pipe closes or `limit` passes first.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Option<String> {
        self.wait_until(limit, |c| {
            String::from_utf8_lossy(&c.bytes)
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
    }

    /// Like [`Output::wait_for`], for a line that starts with `prefix`.
    pub fn wait_for_start(&self, prefix: &str, limit: Duration) -> Option<String> {
        self.wait_until(limit, |c| {
            String::from_utf8_lossy(&c.bytes)
                .lines()
                .find(|l| l.starts_with(prefix))
                .map(str::to_owned)
        })
    }

    /// Waits up to `limit` for the writer to close the pipe (after the
    /// child exits, once everything it wrote has been read).
    pub fn wait_closed(&self, limit: Duration) -> bool {
        self.wait_until(limit, |c| c.closed.then_some(())).is_some()
    }

    fn wait_until<T>(&self, limit: Duration, found: impl Fn(&Collected) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + limit;
        let mut state = self.0.state.lock().unwrap();
        loop {
            state.drain();
            if let Some(t) = found(&state) {
                return Some(t);
            }
            if state.closed {
                return None;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.0.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

fn set_nonblocking(file: &File) {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor `file` owns; no pointers.
    #[allow(unsafe_code)]
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    assert_ne!(rc, -1, "fcntl: {}", io::Error::last_os_error());
}

/// Blocks until `fd` is readable or its writer has closed it.
fn wait_readable(fd: RawFd) {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, exclusive pollfd for the call.
    #[allow(unsafe_code)]
    while unsafe { libc::poll(&mut pollfd, 1, -1) } == -1
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;

    /// `sh -c script` with every stream piped: a `read` in the script
    /// blocks until the test closes the child's stdin.
    fn sh(script: &str) -> Process {
        Process::spawn(
            Command::new("sh")
                .args(["-c", script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
    }

    #[test]
    fn a_line_is_seen_as_soon_as_it_is_written_while_the_child_still_runs() {
        let mut p = sh("echo ready; read _; echo late");
        let out = p.stdout();
        let line = out.wait_for("ready", Duration::from_secs(10));
        assert_eq!(line.as_deref(), Some("ready"));
        assert_eq!(p.wait(Duration::ZERO), None, "still running");
        assert!(!out.text().contains("late"));
        drop(p.child.stdin.take());
        assert!(p.wait(Duration::from_secs(10)).unwrap().success());
        assert!(out.wait_closed(Duration::from_secs(10)));
        assert_eq!(out.text(), "ready\nlate\n");
    }

    #[test]
    fn text_holds_everything_written_before_the_call() {
        // As the Gateway logs on stderr before it answers on another
        // channel: seeing the answer means the log line is in `text`.
        let mut p = sh("echo logged >&2; echo answered; read _");
        let (out, err) = (p.stdout(), p.stderr());
        assert!(out.wait_for("answered", Duration::from_secs(10)).is_some());
        assert_eq!(err.text(), "logged\n");
    }

    #[test]
    fn waiting_for_a_line_ends_when_the_child_closes_its_output() {
        let mut p = sh("echo one; echo two >&2; exit 3");
        let (out, err) = (p.stdout(), p.stderr());
        assert_eq!(out.wait_for("never", Duration::from_secs(10)), None);
        assert_eq!(p.wait(Duration::from_secs(10)).unwrap().code(), Some(3));
        assert!(err.wait_closed(Duration::from_secs(10)));
        assert_eq!(err.text(), "two\n");
    }

    #[test]
    fn a_signal_reaches_the_child_and_its_exit_is_reported() {
        let mut p = sh("echo up; read _");
        let out = p.stdout();
        assert!(out.wait_for("up", Duration::from_secs(10)).is_some());
        p.signal(libc::SIGTERM);
        let status = p.wait(Duration::from_secs(10)).expect("exited");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
    }
}
