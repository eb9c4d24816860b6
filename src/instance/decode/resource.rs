//! Decoding one resource of `event.poller.configuration`: its URL and placeholders, id
//! field, dates, records path, pagination and lookback.

use super::*;

impl Decoder<'_> {
    pub(super) fn resources(
        &mut self,
        config: &ConfigView,
        base_url: Option<&Url>,
        polling_enabled: bool,
    ) -> Option<Vec<Resource>> {
        let key = "event.poller.configuration";
        let path = config.path(key);
        let from_string: Value;
        let resources = match config.map.get(key) {
            // Open Connectors accepts the object written as a JSON string (some connector
            // guides show it so): decoded the same, with a note.
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(resources)) => {
                    self.warning(
                        path.clone(),
                        "given as a JSON string holding the resources, which Open Connectors \
                         accepts and ocpoll decodes the same way; write the object itself, \
                         without the quotes and backslashes",
                    );
                    from_string = Value::Object(resources);
                    from_string.as_object().expect("an object")
                }
                Ok(other) => {
                    self.error(
                        path,
                        format!(
                            "expected an object of resources, found a string holding {}",
                            json::a_type(&other)
                        ),
                    );
                    return None;
                }
                Err(error) => {
                    self.error(
                        path,
                        format!(
                            "expected an object of resources, found a string that is not JSON: \
                             {error} of the string"
                        ),
                    );
                    return None;
                }
            },
            None => {
                if polling_enabled {
                    self.warning(
                        path,
                        "no resources to poll: add \"event.poller.configuration\"",
                    );
                }
                return Some(Vec::new());
            }
            Some(Value::Object(resources)) => resources,
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "expected an object of resources, found {}",
                        json::a_type(other)
                    ),
                );
                return None;
            }
        };
        if resources.is_empty() && polling_enabled {
            self.warning(path.clone(), "no resources to poll");
        }
        let before = self.error_count();
        let mut decoded: Vec<Resource> = resources
            .iter()
            .filter_map(|(key, value)| self.resource(key, value, path.key(key), base_url))
            .collect();
        // `collect` through a filter starts at four slots: 1.6 KiB unused per one-resource
        // instance, 16 MiB over a 10,000-instance fleet.
        decoded.shrink_to_fit();
        (self.error_count() == before).then_some(decoded)
    }

    fn resource(
        &mut self,
        key: &str,
        value: &Value,
        path: JsonPath,
        base_url: Option<&Url>,
    ) -> Option<Resource> {
        let Some(map) = value.as_object() else {
            let mut message = format!(
                "resource {key:?} must be an object with a \"url\", found {}",
                // A credential nested one brace too deep must not be printed.
                if looks_secret(key) {
                    json::a_type(value).to_owned()
                } else {
                    describe_value(value)
                }
            );
            message.push_str(&misplaced_hint(key));
            self.error(path, message);
            return None;
        };
        let view = ConfigView {
            map,
            path: path.clone(),
        };
        self.misplaced_resource_keys(&view);
        let url = self.resource_url(&view, key, base_url);
        let path_params = self.path_params(&view, url.as_ref());
        let id_field = self.id_field(&view);
        let dates = self.dates_configuration(&view);
        let records_path = match self.text(&view, "recordsPath") {
            Text::Value(records) => Some(FieldPath::parse(&records)),
            _ => None,
        };
        let pagination = self.pagination(&view);
        let window_mode = matches!((&url, &dates), (Some(url), Some(None)) if url.has_date_macro());
        let lookback = match self.loose_count(&view, "lookbackSeconds", "a number of seconds") {
            Some(seconds) => Duration::from_secs(seconds),
            None if window_mode => crate::instance::WINDOW_LOOKBACK_DEFAULT,
            None => Duration::ZERO,
        };
        let max_pages = self.loose_count(&view, "maxPages", "a number of pages");
        let max_poll_time = self
            .loose_count(&view, "maxPollSeconds", "a number of seconds")
            .map(Duration::from_secs);
        let other_keys = OtherKeys::new(
            map.iter()
                .filter(|(k, _)| !RESOURCE_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        Some(Resource {
            key: key.to_owned(),
            url: url?,
            id_field: id_field?,
            dates: dates?,
            records_path,
            pagination: pagination?,
            path_params: path_params?,
            lookback,
            max_pages,
            max_poll_time,
            other_keys,
        })
    }

    /// Instance keys inside a resource mean a misplaced brace (the Salesloft seed); other
    /// unknown keys may be misspelled resource keys.
    fn misplaced_resource_keys(&mut self, resource: &ConfigView) {
        for key in resource.map.keys() {
            if RESOURCE_KEYS.contains(&key.as_str()) {
                continue;
            }
            if let Some(meant) = near_miss(key, RESOURCE_KEYS) {
                self.warning(resource.path(key), misspelled(key, meant));
            } else if looks_instance_level(key) {
                self.warning(
                    resource.path(key),
                    format!(
                        "{key:?} is not a resource setting; it looks like an instance \
                         configuration key that ended up inside this resource (check the closing braces)"
                    ),
                );
            }
        }
    }

    fn resource_url(
        &mut self,
        resource: &ConfigView,
        key: &str,
        base_url: Option<&Url>,
    ) -> Option<UrlTemplate> {
        let path = resource.path("url");
        let url = match self.text(resource, "url") {
            Text::Value(url) => url,
            Text::Absent => {
                let message = format!(
                    "resource {key:?} has no \"url\" to poll{}",
                    misplaced_hint(key)
                );
                self.error(path, message);
                return None;
            }
            Text::Unresolved => return None,
        };
        let template = match UrlTemplate::parse(&url) {
            Ok(template) => template,
            Err(errors) => {
                for error in errors {
                    self.error(
                        path.clone(),
                        format!(
                            "{} (at character {} of the url)",
                            error.kind,
                            error.offset + 1
                        ),
                    );
                }
                return None;
            }
        };
        for warning in template.warnings() {
            self.warning(
                path.clone(),
                format!(
                    "{} (at character {} of the url)",
                    warning.message,
                    warning.offset + 1
                ),
            );
        }
        let base_configured = self.base_url_configured;
        self.check_url_is_resolvable(
            &path,
            &url,
            &resource.written("url"),
            base_url,
            base_configured,
        );
        // Returned even when it cannot be resolved: the placeholder checks still apply, and the
        // error above already keeps the instance from running.
        Some(template)
    }

    /// An absolute http(s) URL, or a relative one with a `base.url` to resolve it against.
    /// `shown` is the URL as the file writes it (a reference stays a reference in messages).
    fn check_url_is_resolvable(
        &mut self,
        path: &JsonPath,
        url: &str,
        shown: &str,
        base_url: Option<&Url>,
        base_configured: bool,
    ) {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return;
        }
        if url.contains("://") {
            self.error(path.clone(), format!("{shown} is not an http(s) URL"));
        } else if base_url.is_none() && !base_configured {
            self.error(
                path.clone(),
                format!(
                    "{shown} is relative but configuration has no \"base.url\" to resolve it against \
                     (for Open Connectors: \"https://api.openconnectors.us2.ext.hana.ondemand.com/elements/api-v2\")"
                ),
            );
        }
    }

    fn path_params(
        &mut self,
        resource: &ConfigView,
        url: Option<&UrlTemplate>,
    ) -> Option<BTreeMap<String, Vec<String>>> {
        let path = resource.path("pathParams");
        let mut params = BTreeMap::new();
        match resource.map.get("pathParams") {
            None => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let values = self.path_param_values(value, path.key(name))?;
                    params.insert(name.clone(), values);
                }
            }
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "expected an object of placeholder names to values, found {}",
                        json::a_type(other)
                    ),
                );
                return None;
            }
        }
        let placeholders = url.map(UrlTemplate::path_params).unwrap_or_default();
        let mut ok = true;
        for name in &placeholders {
            if !params.contains_key(*name) {
                self.error(
                    resource.path("url"),
                    format!(
                        "{{{name}}} has no value: add \"pathParams\": {{\"{name}\": [\"...\"]}} to this resource"
                    ),
                );
                ok = false;
            }
        }
        if url.is_some() {
            for name in params.keys() {
                if !placeholders.contains(&name.as_str()) {
                    self.warning(
                        path.key(name),
                        format!("the url has no {{{name}}} placeholder; this value is unused"),
                    );
                }
            }
        }
        ok.then_some(params)
    }

    fn path_param_values(&mut self, value: &Value, path: JsonPath) -> Option<Vec<String>> {
        let items: Vec<&Value> = match value {
            Value::Array(items) if items.is_empty() => {
                self.error(path, "needs at least one value");
                return None;
            }
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        let mut values = Vec::new();
        for item in items {
            match item {
                Value::String(text) => values.push(text.clone()),
                Value::Number(number) => values.push(number.to_string()),
                other => {
                    self.error(
                        path.clone(),
                        format!(
                            "expected a string or a list of strings, found {}",
                            json::a_type(other)
                        ),
                    );
                    return None;
                }
            }
        }
        Some(values)
    }

    fn id_field(&mut self, resource: &ConfigView) -> Option<FieldPath> {
        match self.text(resource, "idField") {
            Text::Value(field) => Some(FieldPath::parse(&field)),
            Text::Absent => {
                self.error(
                    resource.path("idField"),
                    "missing \"idField\" (the record's id field; \"\" identifies records by their content)",
                );
                None
            }
            Text::Unresolved => None,
        }
    }

    /// `Some(None)` for snapshot mode, `None` after an error.
    pub(super) fn dates_configuration(
        &mut self,
        resource: &ConfigView,
    ) -> Option<Option<DatesConfig>> {
        let dates = match resource.object("datesConfiguration") {
            Ok(None) => return Some(None),
            Ok(Some(dates)) => dates,
            Err(message) => {
                self.error(resource.path("datesConfiguration"), message);
                return None;
            }
        };
        self.misspelled_keys(dates.map, &dates.path, DATES_KEYS);
        let updated = self.date_field(&dates, "updated", None);
        let has_created = dates.map.contains_key("createdDateField");
        if !has_created {
            for key in ["createdDateFormat", "createdDateTimezone"] {
                if dates.map.contains_key(key) {
                    self.warning(dates.path(key), "ignored: there is no \"createdDateField\"");
                }
            }
        }
        let created = match (&updated, has_created) {
            (Some(updated), true) => Some(self.date_field(&dates, "created", Some(updated))?),
            _ => None,
        };
        // One field for both dates (seed 002's `changed-groups`, the guide's example): a
        // created date always equal to the updated one would make every change CREATED, an
        // update of a known record too. Read as no created field: UPDATED (an upsert is safe).
        let created = match (created, &updated) {
            (Some(created), Some(updated)) if created.path == updated.path => {
                self.warning(
                    dates.path("createdDateField"),
                    format!(
                        "the same field as \"updatedDateField\" ({}): created and updated cannot \
                         be told apart, so every change is sent as UPDATED (as without a \
                         createdDateField); name the record's creation date field to get CREATED",
                        updated.path
                    ),
                );
                None
            }
            (created, _) => created,
        };
        Some(Some(DatesConfig {
            updated: updated?,
            created,
        }))
    }

    /// Reads `{prefix}DateField`, `{prefix}DateFormat` and `{prefix}DateTimezone`; the created
    /// date's format and zone default to the updated date's. `None` means "reported".
    fn date_field(
        &mut self,
        dates: &ConfigView,
        prefix: &str,
        defaults: Option<&DateField>,
    ) -> Option<DateField> {
        let field_key = format!("{prefix}DateField");
        let format_key = format!("{prefix}DateFormat");
        let zone_key = format!("{prefix}DateTimezone");
        let field = match self.text(dates, &field_key) {
            Text::Value(field) if !field.is_empty() => Some(FieldPath::parse(&field)),
            Text::Value(_) | Text::Absent => {
                self.error(
                    dates.path(&field_key),
                    "missing: the record field that holds this date",
                );
                None
            }
            Text::Unresolved => None,
        };
        let format = match (self.text(dates, &format_key), defaults) {
            (Text::Value(spec), _) => {
                let shown = dates
                    .is_reference(&format_key)
                    .then(|| dates.written(&format_key));
                self.date_format(dates.path(&format_key), &spec, shown)
            }
            (Text::Absent, Some(defaults)) => Some(defaults.format.clone()),
            (Text::Absent, None) => {
                self.error(
                    dates.path(&format_key),
                    "missing: the date's format, e.g. \"yyyy-MM-dd'T'HH:mm:ssXXX\" or \"milliseconds\"",
                );
                None
            }
            (Text::Unresolved, _) => None,
        };
        let zone = match (self.text(dates, &zone_key), defaults) {
            (Text::Value(name), _) => match Zone::parse(&name) {
                Ok(zone) => Some(zone),
                Err(error) => {
                    let message = if dates.is_reference(&zone_key) {
                        format!("{} is not a known timezone", dates.written(&zone_key))
                    } else {
                        error.to_string()
                    };
                    self.error(dates.path(&zone_key), message);
                    None
                }
            },
            (_, Some(defaults)) => Some(defaults.zone.clone()),
            (_, None) => Some(Zone::utc()),
        };
        Some(DateField {
            path: field?,
            format: format?,
            zone: zone?,
        })
    }

    /// `reference` is set when the format came from a secret reference: messages then name the
    /// reference instead of quoting its value.
    fn date_format(
        &mut self,
        path: JsonPath,
        spec: &str,
        reference: Option<String>,
    ) -> Option<DateFormat> {
        match DateFormat::new(spec) {
            Ok(format) => {
                if let Some(doubts) = format.doubts() {
                    // A pattern from a secret reference is named, never quoted.
                    let shown = reference.clone().unwrap_or_else(|| format!("{spec:?}"));
                    for reason in &doubts.reasons {
                        let meant = match &reference {
                            Some(_) => String::new(),
                            None => format!("; did you mean {:?}?", doubts.meant),
                        };
                        self.warning(path.clone(), format!("{shown}: {reason}{meant}"));
                    }
                }
                if format.has_dotless_fraction() {
                    self.warning(
                        path,
                        format!(
                            "{spec:?} has fraction digits (S) right after the seconds without a '.'; \
                             ocpoll also accepts a '.' there, but \"ss.SSS...\" says what the provider sends"
                        ),
                    );
                }
                Some(format)
            }
            Err(error) => {
                let message = match reference {
                    Some(reference) => format!("{reference} is not a valid date format"),
                    None => error.to_string(),
                };
                self.error(path, message);
                None
            }
        }
    }

    fn pagination(&mut self, resource: &ConfigView) -> Option<Pagination> {
        let path = resource.path("pagination");
        let map = match resource.map.get("pagination") {
            None => return Some(Pagination::default()),
            Some(Value::Object(map)) => map,
            Some(other) => {
                self.error(
                    path,
                    format!(
                        "expected an object like {{\"type\": \"auto\"}}, found {}",
                        json::a_type(other)
                    ),
                );
                return None;
            }
        };
        let view = ConfigView { map, path };
        self.misspelled_keys(
            view.map,
            &view.path,
            &["type", "pageSize", "cursorPath", "cursorParam", "pageParam"],
        );
        let kind = match self.text(&view, "type") {
            Text::Value(kind) => kind,
            _ => "auto".to_owned(),
        };
        match kind.as_str() {
            "auto" => {
                let page_size = self
                    .loose_count(&view, "pageSize", "a page size")
                    .unwrap_or(200);
                if page_size == 0 || page_size > u64::from(u32::MAX) {
                    self.error(view.path("pageSize"), "must be between 1 and 4294967295");
                    return None;
                }
                Some(Pagination::Auto {
                    page_size: page_size as u32,
                })
            }
            "cursor" => {
                let cursor_path = match self.text(&view, "cursorPath") {
                    Text::Value(path) if !path.is_empty() => FieldPath::parse(&path),
                    _ => {
                        self.error(
                            view.path("cursorPath"),
                            "missing: where the next cursor is in the response body",
                        );
                        return None;
                    }
                };
                let cursor_param = match self.text(&view, "cursorParam") {
                    Text::Value(param) => param,
                    _ => "cursor".to_owned(),
                };
                Some(Pagination::Cursor {
                    cursor_path,
                    cursor_param,
                })
            }
            "page" => {
                let page_param = match self.text(&view, "pageParam") {
                    Text::Value(param) => param,
                    _ => "page".to_owned(),
                };
                Some(Pagination::Page { page_param })
            }
            "none" => Some(Pagination::None),
            _ => {
                self.error(
                    view.path("type"),
                    format!(
                        "{} is not a pagination type; use \"auto\", \"cursor\", \"page\" or \"none\"",
                        view.written("type")
                    ),
                );
                None
            }
        }
    }
}

/// For a "resource" whose key is really an instance setting (the Salesloft seed's misplaced
/// brace), the hint that says so; empty otherwise.
fn misplaced_hint(key: &str) -> String {
    if looks_instance_level(key) {
        format!(
            "; {key:?} looks like an instance setting that ended up inside \
             event.poller.configuration (check the closing braces)"
        )
    } else {
        String::new()
    }
}
