//! Finds plugin libraries and loads them through abi_stable's layout checks.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()`,
//! not `load_from_file`, because the latter caches the first result per
//! module type, failures included. Libraries are never unloaded.
//!
//! A library is checked against the base root module (`module::base`),
//! which every plugin of the ffi series passes, then against the current
//! one: abi_stable refuses a library whose root module has fewer fields
//! than the loader's type, so the second check is how an older plugin is
//! told apart (it loads, without the later fields).

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use openclaw_ffi::module::{base, BuildInfo, PluginMod_Ref, FFI_VERSION};

use crate::metrics::PluginMetricsFn;

/// The plugin's `check_start` entry.
pub type CheckStartFn = extern "C" fn(
    openclaw_ffi::runtime::RuntimeBox,
    abi_stable::std_types::RStr<'_>,
) -> abi_stable::std_types::RResult<
    abi_stable::std_types::RVec<abi_stable::std_types::RString>,
    abi_stable::std_types::RVec<openclaw_ffi::module::ConfigIssue>,
>;

/// A plugin library whose layout and version were checked.
pub struct LoadedPlugin {
    pub id: String,
    pub path: PathBuf,
    /// The fields every plugin of this ffi series has.
    pub module: base::PluginMod_Ref,
    /// `None` when the plugin was built before plugins exported metrics.
    pub metrics: Option<PluginMetricsFn>,
    /// `None` when the plugin was built before `check_start`: `--check`
    /// then says that secrets are resolved only at start.
    pub check_start: Option<CheckStartFn>,
    pub info: BuildInfo,
}

/// The file name a plugin with this id has on this platform.
pub fn library_file_name(id: &str) -> String {
    let stem = format!("openclaw_{}", id.replace('-', "_"));
    if cfg!(target_os = "macos") {
        format!("lib{stem}.dylib")
    } else {
        format!("lib{stem}.so")
    }
}

/// Finds the library for `id`: each search entry is a directory holding
/// the library, or the library file itself.
///
/// # Errors
///
/// A message naming the file and where it was looked for.
pub fn find(id: &str, search: &[PathBuf]) -> Result<PathBuf, String> {
    let name = library_file_name(id);
    for entry in search {
        if entry.is_dir() {
            let candidate = entry.join(&name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        } else if entry.file_name().is_some_and(|f| f == name.as_str()) && entry.is_file() {
            return Ok(entry.clone());
        }
    }
    let places: Vec<String> = search.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "plugin library {name} not found in plugins.load.paths [{}]",
        places.join(", ")
    ))
}

/// Loads and checks the library at `path`, which must implement `id`.
///
/// # Errors
///
/// One line: what is wrong, naming the file, and for an incompatible build
/// both ffi versions. The full layout report goes to the debug log.
pub fn load(id: &str, path: &Path) -> Result<LoadedPlugin, String> {
    let header = lib_header_from_path(path).map_err(|e| describe(path, &e, None))?;
    let theirs = header.version_strings().version.as_str().to_owned();
    let module = header
        .init_root_module::<base::PluginMod_Ref>()
        .map_err(|e| describe(path, &e, Some(&theirs)))?;
    // Fields added later in the series exist only in libraries built with
    // them: a library built before fails this second check, and lacks them.
    let current = match header.init_root_module::<PluginMod_Ref>() {
        Ok(current) => Some(current),
        Err(e) => {
            log::debug!(target: "gateway", "plugin {} has only the base root module: {e}", path.display());
            None
        }
    };
    let metrics = current.and_then(|c| c.metrics());
    let check_start = current.and_then(|c| c.check_start());
    let actual = module.plugin_id()();
    if actual.as_str() != id {
        return Err(format!(
            "plugin {} implements {:?}, not {id:?}",
            path.display(),
            actual.as_str()
        ));
    }
    let info = module.build_info()();
    Ok(LoadedPlugin {
        id: id.to_owned(),
        path: path.to_path_buf(),
        module,
        metrics,
        check_start,
        info,
    })
}

fn describe(path: &Path, err: &LibraryError, theirs: Option<&str>) -> String {
    log::debug!(target: "gateway", "loading {} failed: {err}", path.display());
    let file = path.display();
    match err {
        LibraryError::OpenError { .. } => format!("plugin {file} cannot be opened (missing or not a shared library)"),
        LibraryError::GetSymbolError { .. } => format!("plugin {file} is not an OpenClaw plugin (no abi_stable root module)"),
        LibraryError::InvalidAbiHeader(_) => format!(
            "plugin {file} is incompatible: built with another abi_stable release (plugin ffi {}, gateway ffi {FFI_VERSION})",
            theirs.unwrap_or("unknown")
        ),
        LibraryError::RootModule { .. } => format!("plugin {file} failed to initialise its root module"),
        // abi_stable refuses a root module with fewer entries than this
        // Gateway expects, which a build of the same version can have.
        _ if theirs == Some(FFI_VERSION) => format!(
            "plugin {file} is incompatible: its root module does not have the layout of openclaw-ffi {FFI_VERSION} that this Gateway uses (built from another revision; rebuild it with this Gateway)"
        ),
        _ => format!(
            "plugin {file} is incompatible: built against openclaw-ffi {}, this Gateway uses openclaw-ffi {FFI_VERSION}",
            theirs.unwrap_or("unknown")
        ),
    }
}
