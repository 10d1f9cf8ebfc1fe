//! Test fixture: a plugin library built against an incompatible ABI, an
//! imagined `openclaw-ffi` 9.0.0 whose root module has another layout. The
//! Gateway must refuse to load it with a one-line error naming both versions.

#![allow(non_local_definitions, non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_extern_fn, sabi_types::VersionStrings, std_types::RStr,
    StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
pub struct PluginMod {
    #[sabi(last_prefix_field)]
    pub plugin_id: extern "C" fn() -> RStr<'static>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "openclaw_webhooks";
    const NAME: &'static str = "openclaw plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("9.0.0");
}

#[export_root_module]
pub fn get_library() -> PluginMod_Ref {
    PluginMod { plugin_id }.leak_into_prefix()
}

#[sabi_extern_fn]
fn plugin_id() -> RStr<'static> {
    RStr::from_str("webhooks")
}
