//! Choosing the authentication method from the keys present (docs/instances.md).

use super::*;

/// Form fields of the token requests that `oauth.token.params` may not replace.
const RESERVED_TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "code",
    "refresh_token",
    "redirect_uri",
    "code_verifier",
    "client_id",
    "client_secret",
];

impl Decoder<'_> {
    pub(super) fn auth(&mut self, config: &ConfigView) -> Option<Auth> {
        if [
            "elements.user.secret",
            "elements.organization.secret",
            "elements.instance.token",
        ]
        .iter()
        .any(|key| config.map.contains_key(*key))
        {
            // Through the hub, the provider credentials are Open Connectors' business.
            return self.hub_auth(config);
        }
        let mut families = Vec::new();
        if let Some(basic) = self.basic_auth(config) {
            families.push(basic);
        }
        if let Some(api_key) = self.api_key_auth(config) {
            families.push(api_key);
        }
        if let Some(token) = self.secret_key(config, "oauth.access.token") {
            families.push(Auth::Bearer { token });
        }
        if let Some(oauth) = self.oauth2_auth(config) {
            families.push(oauth);
        }
        match families.len() {
            0 => Some(Auth::None),
            1 => families.pop(),
            _ => {
                let kinds: Vec<_> = families.iter().map(Auth::kind).collect();
                self.error(
                    config.path.clone(),
                    format!(
                        "several authentication methods are configured ({}); keep one",
                        kinds.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn hub_auth(&mut self, config: &ConfigView) -> Option<Auth> {
        let user = self.required_secret(config, "elements.user.secret", "the hub");
        let organization = self.required_secret(config, "elements.organization.secret", "the hub");
        let element = self.required_secret(config, "elements.instance.token", "the hub");
        Some(Auth::Hub {
            user: user?,
            organization: organization?,
            element: element?,
        })
    }

    fn basic_auth(&mut self, config: &ConfigView) -> Option<Auth> {
        let has_user = config.map.contains_key("username");
        let has_password = config.map.contains_key("password");
        if !has_user && !has_password {
            return None;
        }
        let username = match self.text(config, "username") {
            Text::Value(username) => Some(username),
            Text::Unresolved => Some(String::new()),
            Text::Absent => {
                self.error(
                    config.path("username"),
                    "\"password\" is set but \"username\" is missing",
                );
                None
            }
        };
        let password = self.required_secret(config, "password", "HTTP Basic authentication");
        Some(Auth::Basic {
            username: username?,
            password: password?,
        })
    }

    fn api_key_auth(&mut self, config: &ConfigView) -> Option<Auth> {
        let key = self.secret_key(config, "api.key")?;
        let header = match self.text(config, "api.key.header") {
            Text::Value(header) if is_header_name(&header) => header,
            Text::Value(_) => {
                self.error(
                    config.path("api.key.header"),
                    format!(
                        "{} is not a valid HTTP header name",
                        config.written("api.key.header")
                    ),
                );
                return None;
            }
            Text::Absent | Text::Unresolved => "Authorization".to_owned(),
        };
        Some(Auth::ApiKey { header, key })
    }

    /// OAuth 2 (docs/instances.md#oauth-2): the token endpoint and the client are needed in
    /// both flows; a refresh token in the file chooses the refresh flow, its absence the
    /// authorization-code flow (tokens from `providerData.code` or `ocpoll auth`).
    fn oauth2_auth(&mut self, config: &ConfigView) -> Option<Auth> {
        const NEEDED: [&str; 3] = ["oauth.token.url", "oauth.api.key", "oauth.api.secret"];
        const FLOW_KEYS: [&str; 3] = [
            "oauth.token.url",
            "oauth.user.refresh_token",
            "oauth.authorization.url",
        ];
        let has = |key: &str| config.map.contains_key(key);
        let missing: Vec<&str> = NEEDED.into_iter().filter(|key| !has(key)).collect();
        if !FLOW_KEYS.iter().any(|key| has(key)) {
            let present: Vec<&str> = NEEDED.into_iter().filter(|key| has(key)).collect();
            if let Some(first) = present.first() {
                // Seeds carry the provider app's OAuth client for Open Connectors to use.
                self.warning(
                    config.path(first),
                    format!(
                        "OAuth client credentials without {}: ocpoll sends no authentication; \
                         add oauth.token.url (and oauth.authorization.url for `ocpoll auth`) for \
                         OAuth 2, or the elements.* secrets to poll through Open Connectors",
                        missing.join(", ")
                    ),
                );
                // Still check them for placeholders.
                for key in present {
                    self.secret_key(config, key);
                }
            }
            return None;
        }
        if !missing.is_empty() {
            let first = FLOW_KEYS
                .into_iter()
                .find(|key| has(key))
                .unwrap_or("oauth.token.url");
            self.error(
                config.path(first),
                format!("OAuth 2 needs {} as well", missing.join(", ")),
            );
            return None;
        }
        let token_url = self.absolute_url(config, "oauth.token.url");
        let client_id = self.secret_key(config, "oauth.api.key");
        let client_secret = self.secret_key(config, "oauth.api.secret");
        let refresh_token = self.secret_key(config, "oauth.user.refresh_token");
        let authorization_url = self.optional_url(config, "oauth.authorization.url");
        let callback_url = self.optional_url(config, "oauth.callback.url");
        let client_auth = self.client_auth(config);
        let token_params = self.token_params(config);
        let scope = match self.text(config, "oauth.scope") {
            Text::Value(scope) if !scope.trim().is_empty() => Some(scope.trim().to_owned()),
            _ => None,
        };
        let code = self.provider_code.clone();
        if code.is_some() && !has("oauth.callback.url") {
            self.error(
                config.path("oauth.callback.url"),
                "missing: providerData.code is exchanged with the redirect URI it was issued for; \
                 set oauth.callback.url to it",
            );
        }
        Some(Auth::OAuth2(Box::new(OAuth2 {
            token_url: token_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            refresh_token,
            client_auth: client_auth?,
            token_params: token_params?,
            authorization_url: authorization_url?,
            callback_url: callback_url?,
            scope,
            code,
        })))
    }

    /// An optional absolute http(s) URL: `Some(None)` when absent, `None` when invalid.
    fn optional_url(&mut self, config: &ConfigView, key: &str) -> Option<Option<Url>> {
        if matches!(config.map.get(key), None | Some(Value::Null)) {
            return Some(None);
        }
        self.absolute_url(config, key).map(Some)
    }

    fn client_auth(&mut self, config: &ConfigView) -> Option<ClientAuth> {
        match self.text(config, "oauth.client.auth") {
            Text::Absent | Text::Unresolved => Some(ClientAuth::Body),
            Text::Value(text) => match text.trim().to_ascii_lowercase().as_str() {
                "body" => Some(ClientAuth::Body),
                "basic" => Some(ClientAuth::Basic),
                _ => {
                    self.error(
                        config.path("oauth.client.auth"),
                        format!(
                            "{} is not `body` or `basic`",
                            config.written("oauth.client.auth")
                        ),
                    );
                    None
                }
            },
        }
    }

    /// `oauth.token.params`: an object of strings (numbers and booleans taken as written).
    fn token_params(&mut self, config: &ConfigView) -> Option<Vec<(String, String)>> {
        let path = config.path("oauth.token.params");
        let Some(value) = config.map.get("oauth.token.params") else {
            return Some(Vec::new());
        };
        let Value::Object(map) = value else {
            let message = format!("expected an object, found {}", json::a_type(value));
            self.error(path, message);
            return None;
        };
        let mut params = Vec::new();
        let mut ok = true;
        for (name, value) in map {
            let text = match value {
                Value::String(text) => match self.resolve(text, || path.key(name)) {
                    Text::Value(text) => text,
                    _ => String::new(),
                },
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                other => {
                    let message = format!("expected a string, found {}", json::a_type(other));
                    self.error(path.key(name), message);
                    ok = false;
                    continue;
                }
            };
            if RESERVED_TOKEN_PARAMS.contains(&name.as_str()) {
                self.error(
                    path.key(name),
                    format!("{name:?} is set by ocpoll itself and cannot be overridden"),
                );
                ok = false;
                continue;
            }
            params.push((name.clone(), text));
        }
        ok.then_some(params)
    }

    fn required_secret(
        &mut self,
        config: &ConfigView,
        key: &str,
        needed_by: &str,
    ) -> Option<Secret> {
        if !config.map.contains_key(key) {
            self.error(config.path(key), format!("missing: {needed_by} needs it"));
            return None;
        }
        self.secret_key(config, key)
    }
}
