//! ocelot: a collector of logs, metrics and traces that reads the OpenTelemetry
//! Collector's configuration language.

pub mod app;
pub mod cli;
pub mod component;
pub mod config;
pub mod connectors;
pub mod exporters;
pub mod extensions;
pub mod kube;
pub mod net;
pub mod ottl;
pub mod pdata;
pub mod pipeline;
pub mod processors;
pub mod receivers;
pub mod registry;
pub mod reload;
pub mod storage;
pub mod systemd;
pub mod telemetry;
pub mod tls;
pub mod top;
