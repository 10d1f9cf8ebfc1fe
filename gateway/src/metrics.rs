//! The Gateway's `/metrics`: its own series (build, plugins, readiness, the
//! TaskFlow store), encoded by `prometheus-client`, followed by each
//! plugin's exposition, which the plugin encodes itself and hands over
//! through its root module's `metrics` function.
//!
//! A plugin built before that function existed has none: it is reported
//! with `metrics="false"` in `openclaw_gateway_plugin_info` and adds no
//! series.

use std::fmt;
use std::sync::{Arc, OnceLock};

use abi_stable::std_types::RString;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::admin::{Phase, Readiness};
use crate::taskflow::{Store, StoreMetrics};

/// The exported function through which a plugin hands over its metrics.
pub type PluginMetricsFn = extern "C" fn() -> RString;

/// One loaded plugin, as the metrics report it.
#[derive(Debug, Clone)]
pub struct PluginSource {
    pub id: String,
    pub version: String,
    pub ffi_version: String,
    /// `None` for a plugin built before the ABI had `metrics`.
    pub metrics: Option<PluginMetricsFn>,
}

/// Everything a scrape encodes.
pub struct Exposition {
    registry: Registry,
    gateway: Arc<GatewayCollector>,
}

impl Exposition {
    pub fn new(readiness: Arc<Readiness>, plugins: Vec<PluginSource>) -> Self {
        let gateway = Arc::new(GatewayCollector {
            readiness,
            plugins,
            store: OnceLock::new(),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Arc::clone(&gateway)));
        Self { registry, gateway }
    }

    /// From now on, the store's series come from `store`.
    pub fn store_opened(&self, store: &Store) {
        let _ = self.gateway.store.set(store.clone());
    }

    /// The Prometheus text exposition (version 0.0.4) of the Gateway and
    /// every plugin that has metrics.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(64 * 1024);
        if let Err(fmt::Error) =
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        {
            log::error!(target: "gateway", "could not encode the Gateway's metrics");
            text.clear();
        }
        for plugin in &self.gateway.plugins {
            if let Some(metrics) = plugin.metrics {
                let theirs = metrics();
                text.push_str(&theirs);
                if !theirs.is_empty() && !theirs.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        text
    }
}

struct GatewayCollector {
    readiness: Arc<Readiness>,
    plugins: Vec<PluginSource>,
    store: OnceLock<Store>,
}

impl fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayCollector")
            .field("plugins", &self.plugins)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Collector for GatewayCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let mut m = enc.encode_descriptor(
            "openclaw_gateway_build",
            "The Gateway's build: its version and the ffi version plugins are checked against",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("ffi_version", openclaw_ffi::module::FFI_VERSION),
        ])?;
        let mut m = enc.encode_descriptor(
            "openclaw_gateway_plugin",
            "A loaded plugin: its version, the ffi version it was built against, and whether it reports metrics",
            None,
            MetricType::Info,
        )?;
        for p in &self.plugins {
            m.encode_info(&[
                ("plugin", p.id.as_str()),
                ("version", p.version.as_str()),
                ("ffi_version", p.ffi_version.as_str()),
                (
                    "metrics",
                    if p.metrics.is_some() { "true" } else { "false" },
                ),
            ])?;
        }
        let mut m = enc.encode_descriptor(
            "openclaw_gateway_ready",
            "1 while the store is open and every plugin serves; 0 while starting or draining",
            None,
            MetricType::Gauge,
        )?;
        m.encode_gauge(&i64::from(self.readiness.phase() == Phase::Ready))?;

        let store = self.store.get();
        let fallback;
        let histograms = match store {
            Some(store) => store.metrics(),
            None => {
                fallback = StoreMetrics::default();
                &fallback
            }
        };
        let m = enc.encode_descriptor(
            "openclaw_taskflow_store_commit_duration_seconds",
            "Time the TaskFlow store's writer took for one group commit: evaluation, staging and the durable commit",
            None,
            MetricType::Histogram,
        )?;
        histograms.commit_seconds.encode(m)?;
        let m = enc.encode_descriptor(
            "openclaw_taskflow_store_commit_batch_size",
            "Operations committed together in one group commit",
            None,
            MetricType::Histogram,
        )?;
        histograms.batch_size.encode(m)?;
        let mut m = enc.encode_descriptor(
            "openclaw_taskflow_flows",
            "Flows the TaskFlow store holds, by status",
            None,
            MetricType::Gauge,
        )?;
        let counts = store.map(Store::flows_by_status);
        for (status, n) in
            counts.unwrap_or_else(|| openclaw_ffi::records::FlowStatus::ALL.map(|s| (s, 0)))
        {
            m.encode_family(&[("status", status.as_str())])?
                .encode_gauge(&i64::try_from(n).unwrap_or(i64::MAX))?;
        }
        let mut m = enc.encode_descriptor(
            "openclaw_taskflow_cached_flows",
            "Flows the TaskFlow store holds in memory (at most tasks.cacheMaxFlows)",
            None,
            MetricType::Gauge,
        )?;
        let cached = store.map_or(0, Store::cached_flows);
        m.encode_gauge(&i64::try_from(cached).unwrap_or(i64::MAX))?;
        Ok(())
    }
}
