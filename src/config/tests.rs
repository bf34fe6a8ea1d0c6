//! Every class of config error, with the file, line and column it names.

use super::*;
use crate::exporters::ExporterConfig;

type Loaded = super::Loaded<crate::registry::Components>;

fn load_one(yaml: &str) -> Loaded {
    load(&[Source { name: "agent.yaml".into(), text: yaml.into() }], &|name| match name {
        "ENDPOINT" => Some("collector:4317".into()),
        _ => None,
    })
}

fn errors(yaml: &str) -> Vec<String> {
    let loaded = load_one(yaml);
    assert!(loaded.config.is_none(), "expected errors");
    loaded.errors().map(ToString::to_string).collect()
}

fn warnings(loaded: &Loaded) -> Vec<String> {
    loaded.diagnostics.iter().filter(|d| d.severity == Severity::Warning).map(ToString::to_string).collect()
}

const VALID: &str = "\
receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
";

#[test]
fn the_embedded_default_is_valid() {
    let loaded: Loaded = load_default();
    assert_eq!(loaded.diagnostics, vec![]);
    let config = loaded.config.unwrap();
    assert_eq!(config.service.pipelines.len(), 3);
}

#[test]
fn a_minimal_config_is_valid() {
    let loaded = load_one(VALID);
    assert_eq!(loaded.diagnostics, vec![]);
    assert!(loaded.config.is_some());
}

#[test]
fn unknown_key_in_a_component_names_the_valid_ones() {
    let errors = errors(&VALID.replace("      grpc:\n", "      grpc:\n        endpont: 127.0.0.1:4317\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("agent.yaml:5:9: error: receiver `otlp`: unknown field `endpont`"), "{}", errors[0]);
    assert!(errors[0].contains("`endpoint`"), "{}", errors[0]);
}

#[test]
fn unknown_top_level_key() {
    let errors = errors(&format!("{VALID}recievers: {{}}\n"));
    assert!(
        errors[0].starts_with("agent.yaml:12:1: error: unknown top-level key `recievers` (did you mean `receivers`?)"),
        "{errors:?}"
    );
}

#[test]
fn unknown_component_type_suggests_and_lists() {
    let errors = errors(&VALID.replace("  debug:\n", "  debgu:\n"));
    let first = &errors[0];
    assert!(
        first.starts_with("agent.yaml:6:3: error: unknown exporter type `debgu` (did you mean `debug`?)"),
        "{first}"
    );
    assert!(first.contains("valid exporter types: otlp, otlp_grpc, otlphttp, otlp_http, debug, file"), "{first}");
}

#[test]
fn pipeline_naming_an_undefined_component() {
    let errors = errors(&VALID.replace("exporters: [debug]", "exporters: [debug, otlp/backend]"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("agent.yaml:11:26: error: pipeline `traces` references exporters `otlp/backend`, which is not defined; defined: `debug`"),
        "{}",
        errors[0]
    );
}

#[test]
fn connector_joining_different_signals_is_a_signal_mismatch() {
    let yaml = VALID.replace("connectors:", "")
        + "    logs:\n      receivers: [forward]\n      exporters: [debug]\nconnectors:\n  forward:\n";
    let yaml = yaml.replace("      exporters: [debug]\n    logs:", "      exporters: [debug, forward]\n    logs:");
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .contains("connector `forward` receives traces from pipeline `traces`, but no traces pipeline lists it"),
        "{}",
        errors[0]
    );
    assert!(errors[0].starts_with("agent.yaml:11:26:"), "{}", errors[0]);
}

#[test]
fn component_type_without_the_pipeline_signal() {
    let mut checker = Checker::default();
    let location = Location { file: "agent.yaml".into(), line: 3, column: 7 };
    checker.check_reference(
        &PipelineId::parse("logs").unwrap(),
        &ComponentId::parse("hostmetrics").unwrap(),
        &location,
        Some((&[Signal::Metrics], "receiver")),
        Signal::Logs,
        "receivers",
        String::new,
    );
    assert_eq!(
        checker.diagnostics[0].to_string(),
        "agent.yaml:3:7: error: receiver `hostmetrics` does not support logs (pipeline `logs`); type `hostmetrics` supports: metrics"
    );
}

#[test]
fn unused_components_are_warnings() {
    let loaded = load_one(&VALID.replace("  debug:\n", "  debug:\n  file:\n    path: /tmp/x\n"));
    assert!(loaded.config.is_some());
    let warnings = warnings(&loaded);
    assert_eq!(
        warnings,
        vec!["agent.yaml:7:3: warning: exporter `file` is defined but not used in any pipeline; it will not run"]
    );
}

#[test]
fn bad_values_and_missing_fields() {
    let errors = errors(&format!("{VALID}processors:\n  batch:\n    send_batch_size: lots\n    timeout: 5 parsecs\n"));
    assert!(
        errors.iter().any(|e| e
            .starts_with("agent.yaml:14:22: error: processor `batch`: expected a non-negative integer, found `lots`")),
        "{errors:?}"
    );
    let errors = self::errors(&VALID.replace("  debug:\n", "  debug:\n  otlp:\n    compression: gzip\n"));
    assert!(
        errors.iter().any(|e| e.contains("exporter `otlp`: endpoint must be set") && e.starts_with("agent.yaml:8:5:")),
        "{errors:?}"
    );
}

#[test]
fn validation_errors_point_at_the_component() {
    let errors =
        errors(&format!("{VALID}processors:\n  batch:\n    send_batch_size: 100\n    send_batch_max_size: 10\n"));
    assert!(errors[0].starts_with("agent.yaml:14:5: error: processor `batch`: send_batch_max_size (10) must be 0 or at least send_batch_size (100)"), "{errors:?}");
}

#[test]
fn several_errors_are_all_reported() {
    let yaml = VALID
        .replace("receivers: [otlp]", "receivers: [otlp/missing]")
        .replace("  debug:\n", "  debug:\n    verbosity: loud\n");
    let errors = errors(&yaml);
    assert_eq!(errors.len(), 2, "{errors:?}");
}

#[test]
fn env_expansion_and_merge() {
    let base = Source { name: "base.yaml".into(), text: VALID.into() };
    let overlay = Source {
        name: "overlay.yaml".into(),
        text: "exporters:\n  otlp:\n    endpoint: ${env:ENDPOINT}\n    timeout: ${env:TIMEOUT:-7s}\nservice:\n  pipelines:\n    traces:\n      exporters: [otlp]\n".into(),
    };
    let loaded: Loaded = load(&[base, overlay], &|name| (name == "ENDPOINT").then(|| "collector:4317".to_string()));
    assert_eq!(
        warnings(&loaded),
        vec!["base.yaml:6:3: warning: exporter `debug` is defined but not used in any pipeline; it will not run"]
    );
    let config = loaded.config.unwrap();
    let ExporterConfig::Otlp(otlp) = &config.exporters[&ComponentId::new("otlp")] else { panic!() };
    assert_eq!(otlp.endpoint, "collector:4317");
    assert_eq!(otlp.timeout.0, std::time::Duration::from_secs(7));
    // The later file replaced the exporter list, and kept the receivers of the first.
    let traces = &config.service.pipelines[&PipelineId::parse("traces").unwrap()];
    assert_eq!(traces.exporters, vec![ComponentId::new("otlp")]);
    assert_eq!(traces.receivers, vec![ComponentId::new("otlp")]);
}

#[test]
fn unset_env_is_a_warning_with_its_place() {
    let loaded =
        load_one(&VALID.replace(
            "      grpc:\n",
            "      grpc:\n        endpoint: \"127.0.0.1:${env:NOPE:-4317}${env:ALSO_NOPE}\"\n",
        ));
    assert!(loaded.config.is_some());
    assert_eq!(
        warnings(&loaded),
        vec!["agent.yaml:5:19: warning: environment variable `ALSO_NOPE` is not set; using an empty value"]
    );
}

#[test]
fn yaml_syntax_errors_have_a_place() {
    let errors = errors("receivers:\n  otlp: [unclosed\n");
    assert!(errors[0].starts_with("agent.yaml:"), "{errors:?}");
    assert!(errors[0].contains("error:"), "{errors:?}");
}

#[test]
fn pipelines_need_receivers_and_exporters_and_valid_ids() {
    let errors = errors(
        "receivers:\n  otlp:\n    protocols: {grpc: }\nservice:\n  pipelines:\n    spans:\n      receivers: [otlp]\n    logs:\n      receivers: [otlp]\n",
    );
    assert!(
        errors.iter().any(|e| e.starts_with("agent.yaml:6:5: error: `spans` is not a valid pipeline id")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("agent.yaml:8:5: error: pipeline `logs` must have at least one exporter")),
        "{errors:?}"
    );
}

#[test]
fn connector_loops_are_errors() {
    let yaml = "receivers:\n  otlp:\n    protocols: {grpc: }\nexporters:\n  debug:\nconnectors:\n  forward/a:\n  forward/b:\nservice:\n  pipelines:\n    logs/one:\n      receivers: [otlp, forward/b]\n      exporters: [forward/a]\n    logs/two:\n      receivers: [forward/a]\n      exporters: [forward/b, debug]\n";
    let errors = errors(yaml);
    assert!(errors.iter().any(|e| e.contains("is part of a loop of pipelines joined by connectors")), "{errors:?}");
}

#[test]
fn missing_service_section() {
    let errors = errors("receivers:\n  otlp:\n    protocols: {grpc: }\n");
    assert!(errors[0].contains("missing `service` section"), "{errors:?}");
}

#[test]
fn filelog_options_are_checked() {
    let yaml = "receivers:\n  filelog:\n    include: [/var/log/*.log]\n    delete_after_read: true\nexporters:\n  debug:\nservice:\n  pipelines:\n    logs:\n      receivers: [filelog]\n      exporters: [debug]\n";
    let errors = errors(yaml);
    assert!(
        errors[0].starts_with("agent.yaml:3:5: error: receiver `filelog`: delete_after_read needs start_at: beginning"),
        "{errors:?}"
    );
    let errors =
        self::errors(&yaml.replace("    delete_after_read: true\n", "    multiline:\n      line_start_pattern: '('\n"));
    assert!(errors[0].contains("invalid pattern"), "{errors:?}");
    let errors = self::errors(
        &yaml.replace("    include: [/var/log/*.log]\n    delete_after_read: true\n", "    start_at: end\n"),
    );
    assert!(errors[0].contains("missing field `include`"), "{errors:?}");
    // filelog is a logs receiver only.
    let errors =
        self::errors(&yaml.replace("    delete_after_read: true\n", "").replace("    logs:\n", "    metrics:\n"));
    assert!(errors[0].contains("receiver `filelog` does not support metrics"), "{errors:?}");
}

#[test]
fn filelog_storage_must_name_an_enabled_file_storage_extension() {
    let yaml = "\
extensions:
  file_storage/state:
    directory: /var/lib/ocelot/state
  health_check:
receivers:
  filelog:
    include: [/var/log/*.log]
    storage: file_storage/state
exporters:
  debug:
service:
  extensions: [file_storage/state, health_check]
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [debug]
";
    let loaded = load_one(yaml);
    assert!(loaded.config.is_some(), "{:?}", loaded.diagnostics);
    let errors = self::errors(&yaml.replace("storage: file_storage/state", "storage: file_storage/other"));
    assert!(errors[0].starts_with("agent.yaml:6:3: error: receiver `filelog`: storage names `file_storage/other`, which is not defined under `extensions`"), "{errors:?}");
    let errors = self::errors(&yaml.replace("storage: file_storage/state", "storage: health_check"));
    assert!(errors[0].contains("storage names `health_check`, which is not a file_storage extension"), "{errors:?}");
    let errors =
        self::errors(&yaml.replace("extensions: [file_storage/state, health_check]", "extensions: [health_check]"));
    assert!(errors[0].contains("which is not listed in service.extensions"), "{errors:?}");
    let errors =
        self::errors(&yaml.replace("    directory: /var/lib/ocelot/state", "    compaction: {on_start: true}"));
    assert!(errors[0].contains("unknown field `compaction`"), "{errors:?}");
    let errors = self::errors(&yaml.replace("    storage: file_storage/state", "    compression: zip"));
    assert!(errors[0].contains("unknown variant `zip`"), "{errors:?}");
}

#[test]
fn routing_sends_only_to_pipelines_that_receive_from_it() {
    let yaml = "\
receivers:
  otlp:
    protocols:
      grpc:
connectors:
  routing:
    default_pipelines: [logs/missing]
    table:
      - condition: attributes[\"a\"] == \"b\"
        pipelines: [logs/other]
exporters:
  debug:
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [routing]
    logs/routed:
      receivers: [routing]
      exporters: [debug]
    logs/other:
      receivers: [otlp]
      exporters: [debug]
";
    let errors = errors(yaml);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("routes to pipeline `logs/other`, which does not list `routing` as a receiver")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("routes to pipeline `logs/missing`, which is not defined")), "{errors:?}");
}
