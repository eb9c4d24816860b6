//! Choosing the authentication method from the keys present (docs/instances.md).

use super::*;

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
        if let Some(refresh) = self.oauth_refresh_auth(config) {
            families.push(refresh);
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

    fn oauth_refresh_auth(&mut self, config: &ConfigView) -> Option<Auth> {
        const KEYS: [&str; 4] = [
            "oauth.token.url",
            "oauth.api.key",
            "oauth.api.secret",
            "oauth.user.refresh_token",
        ];
        let present: Vec<&str> = KEYS
            .into_iter()
            .filter(|key| config.map.contains_key(*key))
            .collect();
        let missing: Vec<&str> = KEYS
            .into_iter()
            .filter(|key| !config.map.contains_key(*key))
            .collect();
        if present.is_empty() {
            return None;
        }
        let only_app_credentials = present
            .iter()
            .all(|key| *key == "oauth.api.key" || *key == "oauth.api.secret");
        if !missing.is_empty() {
            if only_app_credentials {
                // Seeds carry the provider app's OAuth client for Open Connectors to use.
                self.warning(
                    config.path(present[0]),
                    format!(
                        "OAuth client credentials without {}: ocpoll sends no authentication; \
                         add them for the OAuth 2 refresh flow, or the elements.* secrets to poll through Open Connectors",
                        missing.join(", ")
                    ),
                );
                // Still check them for placeholders.
                for key in present {
                    self.secret_key(config, key);
                }
            } else {
                self.error(
                    config.path(present[0]),
                    format!("OAuth 2 refresh needs {} as well", missing.join(", ")),
                );
            }
            return None;
        }
        let token_url = self.absolute_url(config, "oauth.token.url");
        let client_id = self.secret_key(config, "oauth.api.key");
        let client_secret = self.secret_key(config, "oauth.api.secret");
        let refresh_token = self.secret_key(config, "oauth.user.refresh_token");
        Some(Auth::OAuthRefresh {
            token_url: token_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            refresh_token: refresh_token?,
        })
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
