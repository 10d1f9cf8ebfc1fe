//! Where the built artifacts are, and temp dirs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// `target/<profile>`, found from the running test or bench binary
/// (`target/<profile>/deps/<name>-<hash>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Where the plugin library is. `cargo test` and `cargo bench` leave the
/// freshly built `.so` in `deps/` (only `cargo build` copies it up a level,
/// and that copy may be stale), so `deps/` comes first.
pub fn plugin_dirs() -> Vec<PathBuf> {
    vec![target_dir().join("deps"), target_dir()]
}

/// The Gateway binary of the same profile.
pub fn gateway_bin() -> PathBuf {
    let bin = target_dir().join("openclaw-gateway");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (`cargo test --workspace` and `./scripts/bench` do)",
        bin.display()
    );
    bin
}

/// A directory removed when dropped, with the PostgreSQL schema and Redis
/// prefix of the Gateways started in it when the suite runs on PostgreSQL
/// (see [`crate::cluster::test_store`]), dropped with it.
pub struct TempDir(
    PathBuf,
    pub(crate) std::sync::Mutex<Option<crate::cluster::TestStore>>,
);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "openclaw-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir, std::sync::Mutex::new(None))
    }

    /// Owns nothing: dropping it removes nothing.
    pub(crate) fn none() -> Self {
        Self(PathBuf::new(), std::sync::Mutex::new(None))
    }

    /// Pins the Gateways started in this directory to the embedded store
    /// (see [`crate::cluster::test_store`]).
    pub fn embedded(self) -> Self {
        *self.1.lock().unwrap() = Some(crate::cluster::TestStore::Embedded);
        self
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
