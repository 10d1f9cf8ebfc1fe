//! What a plugin library exports: its root module and running instance.

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, RDuration, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::runtime::RuntimeBox;

/// Build identity a plugin reports to the host for its startup log.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct BuildInfo {
    pub package: RString,
    pub version: RString,
    /// The version of this crate the plugin was built against.
    pub ffi_version: RString,
    /// Short git revision, or `unknown` outside a git checkout.
    pub git_revision: RString,
    pub profile: RString,
}

/// One problem in a plugin's configuration. `path` is dotted and relative to
/// the plugin's `config` object (the host prefixes the rest).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct ConfigIssue {
    pub path: RString,
    pub message: RString,
}

/// A plugin that is serving. Dropping it does not stop it; call `stop`.
#[sabi_trait]
pub trait PluginInstance: Send + Sync {
    /// Stops accepting connections and lets in-flight requests finish for
    /// at most `grace`; connections still open after it are closed. Returns
    /// once the plugin has stopped serving, so at most a short moment after
    /// `grace`. `grace` is the only place the drain time is decided. Later
    /// calls return at once.
    #[sabi(last_prefix_field)]
    fn stop(&self, grace: RDuration) -> RResult<(), RString>;
}

pub type PluginInstanceBox = PluginInstance_TO<'static, RBox<()>>;

/// The root module: the one symbol a plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
pub struct PluginMod {
    /// The id under `plugins.entries` that this library implements.
    pub plugin_id: extern "C" fn() -> RStr<'static>,
    pub build_info: extern "C" fn() -> BuildInfo,
    /// Validates the plugin's `config` (JSON text) without side effects.
    /// On success returns one human-readable line per route it would serve.
    pub check_config:
        extern "C" fn(config_json: RStr<'_>) -> RResult<RVec<RString>, RVec<ConfigIssue>>,
    /// Starts serving on the runtime's listener with the given `config`.
    #[sabi(last_prefix_field)]
    pub start: extern "C" fn(
        runtime: RuntimeBox,
        config_json: RStr<'_>,
    ) -> RResult<PluginInstanceBox, RString>,
    /// Reports what `start` would do with this runtime and `config`, without
    /// serving: the config checked as by `check_config`, then each route's
    /// secrets resolved through `runtime`, one line per route saying whether
    /// it would serve or be skipped and why. Binds no session and takes no
    /// listener. Plugins built before this field lack it (the accessor
    /// returns `None`).
    pub check_start: extern "C" fn(
        runtime: RuntimeBox,
        config_json: RStr<'_>,
    ) -> RResult<RVec<RString>, RVec<ConfigIssue>>,
    /// The plugin's metrics in the Prometheus text exposition format
    /// (version 0.0.4), every family named `openclaw_<plugin id>_…` so that
    /// the host can append it to its own without a clash. Empty before
    /// `start`. Added after the last prefix field: a plugin
    /// built before it loads all the same, and `PluginMod_Ref::metrics`
    /// returns `None` for it.
    pub metrics: extern "C" fn() -> RString,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    /// Libraries are loaded by path (`lib_header_from_path`), so this name is
    /// only what abi_stable reports in its own errors; it names no plugin.
    const BASE_NAME: &'static str = "openclaw_plugin";
    const NAME: &'static str = "openclaw plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this crate, as baked into both sides.
pub const FFI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The root module as every plugin of this compatible series has it: the
/// fields up to `start`, as released in ffi 0.2.0.
///
/// abi_stable lets a library's prefix type have more fields than the
/// loader's, never fewer. So the Gateway checks a library against this
/// type, which any 0.2 plugin passes, and then against [`PluginMod`]; only
/// a library that passes the second has the later fields (`metrics`). New
/// fields go on [`PluginMod`]; this type never changes within the series.
pub mod base {
    use abi_stable::{
        declare_root_module_statics,
        library::RootModule,
        package_version_strings,
        sabi_types::VersionStrings,
        std_types::{RResult, RStr, RString, RVec},
        StableAbi,
    };

    use super::{BuildInfo, ConfigIssue, PluginInstanceBox};
    use crate::runtime::RuntimeBox;

    /// See [`super::PluginMod`] for the fields; the name is the same so
    /// that the layout checker compares the two.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
    pub struct PluginMod {
        pub plugin_id: extern "C" fn() -> RStr<'static>,
        pub build_info: extern "C" fn() -> BuildInfo,
        pub check_config:
            extern "C" fn(config_json: RStr<'_>) -> RResult<RVec<RString>, RVec<ConfigIssue>>,
        #[sabi(last_prefix_field)]
        pub start: extern "C" fn(
            runtime: RuntimeBox,
            config_json: RStr<'_>,
        ) -> RResult<PluginInstanceBox, RString>,
    }

    impl RootModule for PluginMod_Ref {
        declare_root_module_statics! {PluginMod_Ref}
        const BASE_NAME: &'static str = "openclaw_plugin";
        const NAME: &'static str = "openclaw plugin";
        const VERSION_STRINGS: VersionStrings = package_version_strings!();
    }
}
