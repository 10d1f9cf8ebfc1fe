//! Path rules shared by the file and exec providers: `~` expansion, absolute paths, the
//! ownership/permission check that guards secret files and commands, and the exec command rules.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jsoncfg::Walker;
use serde_json::Value;

/// Expands a leading `~` (alone or followed by `/`) with `home`. Other forms, such as `~user`,
/// are left as written (and are then refused as relative paths).
pub(super) fn expand_home(raw: &str, home: Option<&str>) -> Result<PathBuf, String> {
    let rest = match raw.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
        _ => return Ok(PathBuf::from(raw)),
    };
    match home {
        Some(home) if !home.is_empty() => {
            let mut path = home.trim_end_matches('/').to_owned();
            path.push_str(rest);
            Ok(PathBuf::from(if path.is_empty() { "/" } else { &path }))
        }
        _ => Err("cannot expand \"~\" because HOME is not set".to_owned()),
    }
}

/// Reads a config string that names an absolute path, expanding `~` from the process's HOME.
pub(super) fn absolute_path(w: &mut Walker, path: &str, v: Option<&Value>) -> Option<PathBuf> {
    let raw = w.text(path, v)?;
    let home = std::env::var("HOME").ok();
    match expand_home(&raw, home.as_deref()) {
        Ok(p) if p.is_absolute() => Some(p),
        Ok(_) => {
            w.issue(
                path,
                "must be an absolute path (\"~/\" is expanded from HOME)",
            );
            None
        }
        Err(e) => {
            w.issue(path, e);
            None
        }
    }
}

/// The uid that the permission rules compare file owners with: the process's effective uid,
/// the one the kernel uses for access checks and for owning files this process creates.
#[allow(unsafe_code)]
pub(super) fn current_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// The secure-path rule: the file must not be writable by group or others, and must be owned by
/// the current uid. Being readable by others is allowed (it is an exposure, not a tampering
/// risk, and the same rule applies to exec commands). Returns the reason when the rule fails.
pub(super) fn check_owner_and_mode(meta: &Metadata) -> Result<(), String> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {mode:04o}); \
             fix its permissions or set allowInsecurePath"
        ));
    }
    let uid = current_uid();
    if meta.uid() != uid {
        return Err(format!(
            "is owned by uid {}, not by the current uid {uid}; \
             fix its owner or set allowInsecurePath",
            meta.uid()
        ));
    }
    Ok(())
}

/// Displays a path for messages (paths come from config, never from secret material).
pub(super) fn show(path: &Path) -> String {
    path.display().to_string()
}

/// The exec command rules: absolute; not a symlink unless `allow_symlink` (then its real path is
/// used, which must be absolute and not a symlink); a regular file; inside one of `trusted_dirs`
/// when any are given; and, unless `allow_insecure`, [`check_owner_and_mode`]. Returns the path
/// to spawn, or the reason phrase.
pub(super) fn check_command(
    command: &Path,
    trusted_dirs: &[PathBuf],
    allow_symlink: bool,
    allow_insecure: bool,
) -> Result<PathBuf, String> {
    if !command.is_absolute() {
        return Err("must be an absolute path".to_owned());
    }
    let link = fs::symlink_metadata(command).map_err(|e| format!("cannot be inspected ({e})"))?;
    let exe = if link.file_type().is_symlink() {
        if !allow_symlink {
            return Err("is a symlink (set allowSymlinkCommand to allow it)".to_owned());
        }
        let real = fs::canonicalize(command).map_err(|e| format!("cannot be resolved ({e})"))?;
        let meta = fs::symlink_metadata(&real).map_err(|e| format!("cannot be inspected ({e})"))?;
        if !real.is_absolute() || meta.file_type().is_symlink() {
            return Err("resolves to a path that is not absolute or is a symlink".to_owned());
        }
        real
    } else {
        command.to_path_buf()
    };
    let meta = fs::metadata(&exe).map_err(|e| format!("cannot be inspected ({e})"))?;
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if !trusted_dirs.is_empty() && !in_trusted_dir(&exe, trusted_dirs) {
        return Err("is not inside any of trustedDirs".to_owned());
    }
    if !allow_insecure {
        check_owner_and_mode(&meta)?;
    }
    Ok(exe)
}

/// Compares whole path components, both as configured and with the directory's symlinks resolved.
fn in_trusted_dir(exe: &Path, trusted_dirs: &[PathBuf]) -> bool {
    trusted_dirs.iter().any(|dir| {
        exe.starts_with(dir) || fs::canonicalize(dir).is_ok_and(|real| exe.starts_with(real))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_alone_or_with_a_slash_is_expanded_from_home() {
        let home = Some("/home/op");
        assert_eq!(expand_home("~", home), Ok(PathBuf::from("/home/op")));
        assert_eq!(
            expand_home("~/s/a.json", home),
            Ok(PathBuf::from("/home/op/s/a.json"))
        );
        assert_eq!(
            expand_home("~/x", Some("/home/op/")),
            Ok(PathBuf::from("/home/op/x"))
        );
        assert_eq!(expand_home("/abs", home), Ok(PathBuf::from("/abs")));
        assert_eq!(expand_home("~op/x", home), Ok(PathBuf::from("~op/x")));
    }

    #[test]
    fn tilde_without_home_is_an_error() {
        assert!(expand_home("~/x", None).is_err());
        assert!(expand_home("~/x", Some("")).is_err());
        assert_eq!(expand_home("/x", None), Ok(PathBuf::from("/x")));
    }
}
