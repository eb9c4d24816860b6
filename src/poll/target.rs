//! What a poll is about: one resource of one instance with one value per `{placeholder}`
//! (a [`PollTarget`]), every target of an instance (the `pathParams` fan-out), and the URL a
//! poll of it requests (macros expanded, resolved against `base.url`). Pure.

use super::PollError;
use crate::dates::Zone;
use crate::instance::{Instance, Resource};
use crate::state::ResourceKey;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

/// One thing to poll: a resource of an instance, with one value per `{placeholder}`.
#[derive(Clone, Debug)]
pub struct PollTarget {
    pub instance: Arc<Instance>,
    pub resource: usize,
    pub path_params: BTreeMap<String, String>,
    pub key: ResourceKey,
}

impl PollTarget {
    pub fn resource(&self) -> &Resource {
        &self.instance.resources[self.resource]
    }

    /// The host this target's requests go to, for the per-host limit.
    pub fn provider_host(&self) -> String {
        let raw = self.resource().url.raw();
        Url::parse(raw)
            .ok()
            .or_else(|| self.instance.base_url.clone())
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The resource URL for a poll from `since`: macros expanded in `zone`, `{placeholders}`
    /// filled, resolved against `base.url`.
    pub fn expand_url(&self, since: DateTime<Utc>, zone: &Zone) -> Result<Url, PollError> {
        let expanded = self
            .resource()
            .url
            .expand(since, zone, &self.path_params)
            .map_err(|error| PollError::Url(error.to_string()))?;
        resolve_url(self.instance.base_url.as_ref(), &expanded).map_err(PollError::Url)
    }

    /// "contacts", or "contacts [{"id":"7"}]" for a fanned-out resource (summaries, bars).
    pub fn label(&self) -> String {
        if self.key.path_params.is_empty() {
            self.key.resource.clone()
        } else {
            format!("{} [{}]", self.key.resource, self.key.path_params)
        }
    }
}

/// Every target of an instance: each resource, fanned out over every combination of its
/// `pathParams` values (usually one placeholder with a list).
pub fn targets(instance: &Arc<Instance>) -> Vec<PollTarget> {
    let mut targets = Vec::new();
    for (index, resource) in instance.resources.iter().enumerate() {
        for path_params in combinations(&resource.path_params) {
            targets.push(PollTarget {
                key: ResourceKey::new(&instance.name, &resource.key, &path_params),
                instance: Arc::clone(instance),
                resource: index,
                path_params,
            });
        }
    }
    targets
}

fn combinations(params: &BTreeMap<String, Vec<String>>) -> Vec<BTreeMap<String, String>> {
    let mut all = vec![BTreeMap::new()];
    for (name, values) in params {
        all = all
            .into_iter()
            .flat_map(|partial| {
                values.iter().map(move |value| {
                    let mut next = partial.clone();
                    next.insert(name.clone(), value.clone());
                    next
                })
            })
            .collect();
    }
    all
}

/// Joins a relative resource URL to `base.url` by concatenation: `/hubs/crm/contacts` under
/// `https://host/elements/api-v2` keeps the `/elements/api-v2` prefix (RFC 3986 resolution
/// would drop it, which is never what an Open Connectors user means).
pub fn resolve_url(base: Option<&Url>, expanded: &str) -> Result<Url, String> {
    let lower = expanded.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Url::parse(expanded).map_err(|error| format!("{error}"));
    }
    let base = base.ok_or_else(|| "a relative URL needs base.url".to_owned())?;
    let joined = format!(
        "{}/{}",
        base.as_str().trim_end_matches('/'),
        expanded.trim_start_matches('/')
    );
    Url::parse(&joined).map_err(|error| format!("{error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_keep_the_base_path() {
        let base = Url::parse("https://api.example.com/elements/api-v2").unwrap();
        let url = resolve_url(Some(&base), "/hubs/crm/contacts?where=x").unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.example.com/elements/api-v2/hubs/crm/contacts?where=x"
        );
        let base = Url::parse("https://api.example.com/v2/").unwrap();
        assert_eq!(
            resolve_url(Some(&base), "people").unwrap().as_str(),
            "https://api.example.com/v2/people"
        );
        assert_eq!(
            resolve_url(None, "https://other.example.com/x")
                .unwrap()
                .as_str(),
            "https://other.example.com/x"
        );
        assert!(resolve_url(None, "/relative").is_err());
    }

    #[test]
    fn path_params_fan_out_over_every_combination() {
        let mut params = BTreeMap::new();
        params.insert("a".to_owned(), vec!["1".to_owned(), "2".to_owned()]);
        params.insert("b".to_owned(), vec!["x".to_owned(), "y".to_owned()]);
        let all = combinations(&params);
        assert_eq!(all.len(), 4);
        assert!(all.iter().any(|c| c["a"] == "2" && c["b"] == "x"));
        assert_eq!(combinations(&BTreeMap::new()), vec![BTreeMap::new()]);
    }
}
