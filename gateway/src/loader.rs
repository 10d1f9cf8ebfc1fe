//! Finds plugin libraries and loads them through abi_stable's layout checks.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()`,
//! not `load_from_file`, because the latter caches the first result per
//! module type, failures included. Libraries are never unloaded.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use openclaw_ffi::module::{BuildInfo, PluginMod_Ref, FFI_VERSION};

/// A plugin library whose layout and version were checked.
pub struct LoadedPlugin {
    pub id: String,
    pub path: PathBuf,
    pub module: PluginMod_Ref,
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
        .init_root_module::<PluginMod_Ref>()
        .map_err(|e| describe(path, &e, Some(&theirs)))?;
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
