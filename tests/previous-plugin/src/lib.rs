//! Test fixture: a plugin library built as plugins were before the root
//! module grew: it exports the base root module, which ends at `start`
//! (no `check_start`, no `metrics`).
//! The Gateway must load it, hand it the listener, and report it as having
//! no metrics.
//!
//! It implements id `webhooks` (the test installs it under that library
//! name) and answers every HTTP request on the handed-over listener with
//! one fixed JSON body, closing each connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use abi_stable::export_root_module;
use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_extern_fn;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RDuration, ROption, RResult, RStr, RString, RVec};
// The base root module is the layout every plugin of the series exports:
// the fields up to `start`, before `check_start` and `metrics` were added.
use openclaw_ffi::module::base::{PluginMod, PluginMod_Ref};
use openclaw_ffi::module::{
    BuildInfo, ConfigIssue, PluginInstance, PluginInstanceBox, PluginInstance_TO, FFI_VERSION,
};
use openclaw_ffi::runtime::RuntimeBox;

/// What every request is answered with.
pub const ANSWER: &str = r#"{"ok":true,"plugin":"previous-interface"}"#;

#[export_root_module]
pub fn get_library() -> PluginMod_Ref {
    PluginMod {
        plugin_id,
        build_info,
        check_config,
        start,
    }
    .leak_into_prefix()
}

#[sabi_extern_fn]
fn plugin_id() -> RStr<'static> {
    RStr::from_str("webhooks")
}

#[sabi_extern_fn]
fn build_info() -> BuildInfo {
    BuildInfo {
        package: env!("CARGO_PKG_NAME").into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ffi_version: FFI_VERSION.into(),
        git_revision: "fixture".into(),
        profile: "test".into(),
    }
}

#[sabi_extern_fn]
fn check_config(_config_json: RStr<'_>) -> RResult<RVec<RString>, RVec<ConfigIssue>> {
    RResult::ROk(RVec::from(vec![RString::from(
        "previous-interface fixture: one fixed answer on every path",
    )]))
}

#[sabi_extern_fn]
fn start(runtime: RuntimeBox, _config_json: RStr<'_>) -> RResult<PluginInstanceBox, RString> {
    match catch_unwind(AssertUnwindSafe(|| serve(&runtime))) {
        Ok(Ok(server)) => RResult::ROk(PluginInstance_TO::from_value(server, TD_Opaque)),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(_) => RResult::RErr("the fixture panicked while starting".into()),
    }
}

struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn serve(runtime: &RuntimeBox) -> Result<Server, String> {
    let ROption::RSome(fd) = runtime.take_listener() else {
        return Err("no listener was handed over".into());
    };
    let listener = listener_from_fd(fd)?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stopping);
    let thread = std::thread::spawn(move || {
        for stream in listener.incoming() {
            if flag.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(stream) = stream {
                let _ = answer(stream);
            }
        }
    });
    Ok(Server {
        addr,
        stopping,
        thread: Mutex::new(Some(thread)),
    })
}

#[allow(unsafe_code)]
fn listener_from_fd(fd: i32) -> Result<TcpListener, String> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(format!("invalid listener descriptor {fd}"));
    }
    // SAFETY: the Gateway moved ownership of this listening socket to us
    // through `take_listener`, which hands it out once.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Reads one request (head and `Content-Length` body) and answers it.
fn answer(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body)?;
    let mut stream = reader.into_inner();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ANSWER}",
        ANSWER.len()
    )?;
    stream.flush()
}

impl PluginInstance for Server {
    fn stop(&self, _grace: RDuration) -> RResult<(), RString> {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        RResult::ROk(())
    }
}
