//! Component ids (`type` or `type/name`) and pipeline ids (`signal` or `signal/name`).

use std::fmt;

use crate::pdata::Signal;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    pub type_name: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(text: &str) -> Result<ComponentId, String> {
        let (type_name, name) = match text.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (text, None),
        };
        if type_name.is_empty() || !type_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`{text}` is not a valid component id: the type must be letters, digits and `_`, as in `otlp` or `otlp/backend`"
            ));
        }
        if let Some(name) = name
            && (name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace))
        {
            return Err(format!(
                "`{text}` is not a valid component id: the name after `/` must be non-empty, with no `/` or spaces"
            ));
        }
        Ok(ComponentId { type_name: type_name.to_string(), name: name.map(str::to_string) })
    }

    pub fn new(type_name: &str) -> ComponentId {
        ComponentId { type_name: type_name.to_string(), name: None }
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.type_name, name),
            None => f.write_str(&self.type_name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineId {
    pub signal: Signal,
    pub name: Option<String>,
}

impl PipelineId {
    pub fn parse(text: &str) -> Result<PipelineId, String> {
        let (signal, name) = match text.split_once('/') {
            Some((s, n)) => (s, Some(n)),
            None => (text, None),
        };
        let Some(signal) = Signal::from_name(signal) else {
            return Err(format!(
                "`{text}` is not a valid pipeline id: it must start with traces, metrics or logs, as in `logs` or `logs/files`"
            ));
        };
        if name.is_some_and(|n| n.is_empty() || n.contains('/')) {
            return Err(format!("`{text}` is not a valid pipeline id: the name after `/` must be non-empty"));
        }
        Ok(PipelineId { signal, name: name.map(str::to_string) })
    }
}

impl fmt::Display for PipelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{}/{}", self.signal, name),
            None => write!(f, "{}", self.signal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_ids() {
        assert_eq!(ComponentId::parse("otlp/backend").unwrap().to_string(), "otlp/backend");
        assert_eq!(ComponentId::parse("otlp").unwrap().name, None);
        assert!(ComponentId::parse("").is_err());
        assert!(ComponentId::parse("otlp/").is_err());
        assert!(ComponentId::parse("ot lp").is_err());
    }

    #[test]
    fn pipeline_ids() {
        assert_eq!(PipelineId::parse("logs/files").unwrap().signal, Signal::Logs);
        assert!(PipelineId::parse("spans").unwrap_err().contains("traces, metrics or logs"));
    }
}
