//! Include/exclude filters on names (devices, interfaces, mount points, process
//! names), as upstream's filterset: an item is kept when the include list (if any)
//! matches it and the exclude list (if any) does not.

use std::collections::HashSet;

use super::config::{Match, MatchType};

enum Matcher {
    Strict(HashSet<String>),
    Regexp(regex::RegexSet),
    Glob(globset::GlobSet),
}

impl Matcher {
    fn new<K>(m: &Match<K>) -> Result<Matcher, String> {
        Ok(match m.match_type {
            MatchType::Strict => Matcher::Strict(m.items.iter().cloned().collect()),
            MatchType::Regexp => {
                Matcher::Regexp(regex::RegexSet::new(&m.items).map_err(|e| format!("invalid regexp: {e}"))?)
            }
            MatchType::Glob => {
                let mut set = globset::GlobSetBuilder::new();
                for item in &m.items {
                    set.add(globset::Glob::new(item).map_err(|e| format!("invalid glob `{item}`: {e}"))?);
                }
                Matcher::Glob(set.build().map_err(|e| format!("invalid glob: {e}"))?)
            }
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Strict(set) => set.contains(name),
            Matcher::Regexp(set) => set.is_match(name),
            Matcher::Glob(set) => set.is_match(name),
        }
    }
}

/// A compiled include/exclude pair. An empty list filters nothing.
#[derive(Default)]
pub struct Filter {
    include: Option<Matcher>,
    exclude: Option<Matcher>,
}

impl Filter {
    pub fn new<K>(include: Option<&Match<K>>, exclude: Option<&Match<K>>) -> Result<Filter, String> {
        let compile = |m: Option<&Match<K>>| m.filter(|m| !m.items.is_empty()).map(Matcher::new).transpose();
        Ok(Filter { include: compile(include)?, exclude: compile(exclude)? })
    }

    /// Filters nothing.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    pub fn keeps(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|m| m.matches(name)) && !self.exclude.as_ref().is_some_and(|m| m.matches(name))
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::Devices;
    use super::*;

    #[test]
    fn include_then_exclude() {
        let inc = Match::<Devices>::new(&["^sd", "^nvme"], MatchType::Regexp);
        let exc = Match::<Devices>::new(&["sda1"], MatchType::Strict);
        let f = Filter::new(Some(&inc), Some(&exc)).unwrap();
        assert!(f.keeps("sda") && f.keeps("nvme0n1"));
        assert!(!f.keeps("sda1") && !f.keeps("loop0"));
        let glob = Match::<Devices>::new(&["java*"], MatchType::Glob);
        let f = Filter::new(None, Some(&glob)).unwrap();
        assert!(!f.keeps("java") && f.keeps("bash"));
        assert!(Filter::new::<Devices>(None, None).unwrap().keeps("x"));
        assert!(Filter::new(Some(&Match::<Devices>::new(&["("], MatchType::Regexp)), None).is_err());
    }
}
