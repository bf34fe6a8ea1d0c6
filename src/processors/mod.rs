//! Processors: synchronous functions of a batch, run in order by the pipeline task.
//!
//! A processor that needs time (the `batch` processor's timeout) reports its next
//! deadline and the pipeline task calls it back then; no processor owns a thread or
//! blocks on I/O, so one task per pipeline drives the whole chain without channels
//! between stages.

pub mod actions;
pub mod attributes;
pub mod batch;
pub mod filter;
pub mod importance;
pub mod k8sattributes;
pub mod matching;
pub mod memory_limiter;
pub mod metricstarttime;
pub mod ottl;
pub mod probabilistic_sampler;
pub mod resource;
pub mod resourcedetection;
pub mod tail_sampling;
pub mod transform;

use std::collections::BTreeMap;
use std::path::Path;

use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::component::{Factory, parse_config};
use crate::config::ComponentId;
use crate::extensions::ExtensionConfig;
use crate::pdata::{Batch, Signal};
use crate::pipeline::governor::Governor;
use crate::telemetry::Telemetry;

pub trait Processor: Send {
    /// Takes one batch and pushes what it lets through (zero, one or more) to `out`.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>);

    /// When this processor next wants [`Processor::on_deadline`].
    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn on_deadline(&mut self, _now: Instant, _out: &mut Vec<Batch>) {}

    /// Releases everything held, at shutdown.
    fn flush(&mut self, _out: &mut Vec<Batch>) {}
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProcessorConfig {
    Batch(batch::BatchConfig),
    Filter(Box<filter::FilterConfig>),
    Transform(Box<transform::TransformConfig>),
    Attributes(Box<attributes::AttributesConfig>),
    Resource(Box<resource::ResourceConfig>),
    ResourceDetection(Box<resourcedetection::ResourceDetectionConfig>),
    MemoryLimiter(Box<memory_limiter::MemoryLimiterConfig>),
    Importance(Box<importance::ImportanceConfig>),
    ProbabilisticSampler(Box<probabilistic_sampler::ProbabilisticSamplerConfig>),
    TailSampling(Box<tail_sampling::TailSamplingConfig>),
    MetricStartTime(Box<metricstarttime::MetricStartTimeConfig>),
    K8sAttributes(Box<k8sattributes::K8sAttributesConfig>),
}

pub static FACTORIES: &[Factory<ProcessorConfig>] = &[
    Factory {
        type_name: batch::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(ProcessorConfig::Batch),
    },
    Factory {
        type_name: filter::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| filter::parse(node).map(|c| ProcessorConfig::Filter(Box::new(c))),
    },
    Factory {
        type_name: transform::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| transform::parse(node).map(|c| ProcessorConfig::Transform(Box::new(c))),
    },
    Factory {
        type_name: attributes::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| attributes::parse(node).map(|c| ProcessorConfig::Attributes(Box::new(c))),
    },
    Factory {
        type_name: resource::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| resource::parse(node).map(|c| ProcessorConfig::Resource(Box::new(c))),
    },
    Factory {
        type_name: resourcedetection::TYPE,
        aliases: resourcedetection::ALIASES,
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ProcessorConfig::ResourceDetection(Box::new(c))),
    },
    Factory {
        type_name: memory_limiter::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ProcessorConfig::MemoryLimiter(Box::new(c))),
    },
    Factory {
        type_name: importance::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| importance::parse(node).map(|c| ProcessorConfig::Importance(Box::new(c))),
    },
    Factory {
        type_name: probabilistic_sampler::TYPE,
        aliases: &[],
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ProcessorConfig::ProbabilisticSampler(Box::new(c))),
    },
    Factory {
        type_name: tail_sampling::TYPE,
        aliases: &[],
        signals: &[Signal::Traces],
        parse: |node| tail_sampling::parse(node).map(|c| ProcessorConfig::TailSampling(Box::new(c))),
    },
    Factory {
        type_name: metricstarttime::TYPE,
        aliases: &[],
        signals: &[Signal::Metrics],
        parse: |node| parse_config(node).map(|c| ProcessorConfig::MetricStartTime(Box::new(c))),
    },
    Factory {
        type_name: k8sattributes::TYPE,
        aliases: k8sattributes::ALIASES,
        signals: &Signal::ALL,
        parse: |node| parse_config(node).map(|c| ProcessorConfig::K8sAttributes(Box::new(c))),
    },
];

impl crate::config::StorageUser for ProcessorConfig {
    fn storage(&self) -> Option<&str> {
        match self {
            ProcessorConfig::Importance(c) => c.storage.as_deref(),
            _ => None,
        }
    }
}

/// Every resource in a payload, to change; a missing resource is made.
pub(crate) fn resources_mut(
    payload: &mut crate::pdata::Payload,
) -> Vec<&mut opentelemetry_proto::tonic::resource::v1::Resource> {
    use crate::pdata::Payload;
    match payload {
        Payload::Traces(r) => {
            r.resource_spans.iter_mut().map(|x| x.resource.get_or_insert_with(Default::default)).collect()
        }
        Payload::Metrics(r) => {
            r.resource_metrics.iter_mut().map(|x| x.resource.get_or_insert_with(Default::default)).collect()
        }
        Payload::Logs(r) => {
            r.resource_logs.iter_mut().map(|x| x.resource.get_or_insert_with(Default::default)).collect()
        }
    }
}

/// Every resource's attributes in a payload, to change; a missing resource is made.
pub(crate) fn resource_attributes(
    payload: &mut crate::pdata::Payload,
) -> Vec<&mut Vec<opentelemetry_proto::tonic::common::v1::KeyValue>> {
    resources_mut(payload).into_iter().map(|r| &mut r.attributes).collect()
}

/// What building a processor may need beyond its config.
pub struct Environment<'a> {
    pub telemetry: &'a Telemetry,
    pub governor: &'a Governor,
    /// The `importance` processors' EWMA state, shared by each id's instances.
    pub stores: &'a importance::Stores,
    /// `--storage-dir`.
    pub storage_dir: &'a Path,
    pub extensions: &'a BTreeMap<ComponentId, ExtensionConfig>,
    /// Background work of processors (state checkpoints), drained with the pipelines.
    pub tasks: &'a TaskTracker,
    /// The `k8sattributes` processors' pod watches, shared by each id's instances.
    pub pod_watches: &'a k8sattributes::Watches,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot read the machine's memory size for limit_percentage: {0}")]
    Memory(std::io::Error),
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Kubernetes(String),
}

/// Makes a processor instance for one pipeline.
pub fn build(
    id: &ComponentId,
    config: &ProcessorConfig,
    env: &Environment<'_>,
) -> Result<Box<dyn Processor>, BuildError> {
    let telemetry = env.telemetry;
    Ok(match config {
        ProcessorConfig::Batch(config) => Box::new(batch::BatchProcessor::new(config, telemetry.batch_processor(id))),
        ProcessorConfig::Filter(config) => {
            Box::new(filter::FilterProcessor::new(id, config, telemetry.filter_processor(id)))
        }
        ProcessorConfig::Transform(config) => {
            Box::new(transform::TransformProcessor::new(id, config, telemetry.processor(id)))
        }
        ProcessorConfig::Attributes(config) => {
            Box::new(attributes::AttributesProcessor::new(config, telemetry.processor(id)))
        }
        ProcessorConfig::Resource(config) => {
            Box::new(resource::ResourceProcessor::new(config, telemetry.processor(id)))
        }
        ProcessorConfig::ResourceDetection(config) => {
            Box::new(resourcedetection::ResourceDetectionProcessor::new(config, telemetry.processor(id)))
        }
        ProcessorConfig::MemoryLimiter(config) => {
            let limiter = config.limiter(id, env.governor, telemetry).map_err(BuildError::Memory)?;
            Box::new(memory_limiter::MemoryLimiterProcessor::new(config, limiter))
        }
        ProcessorConfig::Importance(config) => {
            let directory = match config.storage.as_deref().and_then(|name| ComponentId::parse(name).ok()) {
                Some(ext) => match env.extensions.get(&ext) {
                    Some(ExtensionConfig::FileStorage(fs)) => {
                        fs.prepare(env.storage_dir).map_err(BuildError::Storage)?
                    }
                    _ => env.storage_dir.to_path_buf(),
                },
                None => env.storage_dir.to_path_buf(),
            };
            let context = importance::Context {
                stores: env.stores,
                directory: &directory,
                tasks: env.tasks,
                metrics: telemetry.importance(id),
                processor: telemetry.processor(id),
            };
            Box::new(importance::ImportanceProcessor::new(id, config, context))
        }
        ProcessorConfig::ProbabilisticSampler(config) => {
            Box::new(probabilistic_sampler::ProbabilisticSampler::new(config, telemetry.probabilistic_sampler(id)))
        }
        ProcessorConfig::MetricStartTime(config) => {
            Box::new(metricstarttime::MetricStartTimeProcessor::new(config, telemetry.processor(id)))
        }
        ProcessorConfig::K8sAttributes(config) => Box::new(
            k8sattributes::K8sAttributesProcessor::new(
                id,
                config,
                env.pod_watches,
                env.tasks,
                telemetry.k8sattributes(id),
                telemetry.processor(id),
            )
            .map_err(BuildError::Kubernetes)?,
        ),
        ProcessorConfig::TailSampling(config) => Box::new(
            tail_sampling::TailSamplingProcessor::new(id, config, telemetry.tail_sampling(id), telemetry.processor(id))
                .map_err(BuildError::Policy)?,
        ),
    })
}
