//! Walking the pages of one poll (docs/instances.md#resources and docs/design.md#polling).
//!
//! Every page request is the poll's expanded URL (one watermark for the whole poll) with only
//! the page parameter added or replaced; only `Link: rel="next"` hands over a whole URL, which is
//! followed as given. Query strings are edited as text, pair by pair, so the provider gets the
//! other parameters byte for byte as the URL macros encoded them.
//!
//! A provider that hands back a token, cursor or link already seen in this poll would make the
//! poll run forever; that is [`PaginationError::Loop`]. [`MAX_PAGES`] is the safety net for
//! providers that invent a new token forever.

use crate::http::client::Page;
use crate::instance::{FieldPath, Pagination};
use crate::json;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use reqwest::header::LINK;
use std::collections::HashSet;
use thiserror::Error;
use url::{Origin, Url};

/// The most pages one poll reads.
pub const MAX_PAGES: u64 = 100_000;

/// The Open Connectors page-token header and the parameters that carry it back.
pub const NEXT_PAGE_TOKEN_HEADER: &str = "elements-next-page-token";
const NEXT_PAGE_PARAM: &str = "nextPage";
const PAGE_SIZE_PARAM: &str = "pageSize";

/// Everything but RFC 3986's unreserved characters is encoded in a parameter value.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PaginationError {
    #[error("page {page} handed back a {what} already seen in this poll: the provider is looping")]
    Loop { page: u64, what: &'static str },
    #[error("stopped after {MAX_PAGES} pages in one poll")]
    TooManyPages,
    #[error("the `Link` header's next URL {link:?} is not a URL: {reason}")]
    BadLink { link: String, reason: String },
    #[error("the cursor at `{path}` is {found}, not a string or number")]
    BadCursor { path: String, found: &'static str },
    #[error(
        "the `Link` header's next page is on another origin, {origin}, than the resource's \
         ({resource}): credentials are sent only to the origin they were configured for; if the \
         provider really pages there, list {origin} in `http.allowed.origins`"
    )]
    OtherOrigin { origin: String, resource: String },
}

/// The state of one poll's walk through its pages.
pub struct Paginator {
    style: Style,
    /// The first request's URL (the expanded URL plus `pageSize`/page 1); the base of every
    /// page request.
    first: Url,
    /// The URL of the page read last: relative `Link` targets resolve against it.
    current: Url,
    pages_read: u64,
    /// Tokens, cursors and links seen in this poll, to detect loops.
    seen: HashSet<String>,
    /// Origins besides the first URL's that a `Link` may lead to (`http.allowed.origins`).
    allowed_origins: Vec<Origin>,
}

enum Style {
    Auto,
    Cursor { path: FieldPath, param: String },
    Page { param: String },
    None,
}

impl Paginator {
    pub fn new(pagination: &Pagination, expanded_url: Url) -> Paginator {
        let (style, first) = match pagination {
            Pagination::Auto { page_size } => {
                let first = if has_param(&expanded_url, PAGE_SIZE_PARAM) {
                    expanded_url
                } else {
                    with_param(&expanded_url, PAGE_SIZE_PARAM, &page_size.to_string())
                };
                (Style::Auto, first)
            }
            Pagination::Cursor {
                cursor_path,
                cursor_param,
            } => (
                Style::Cursor {
                    path: cursor_path.clone(),
                    param: cursor_param.clone(),
                },
                expanded_url,
            ),
            Pagination::Page { page_param } => (
                Style::Page {
                    param: page_param.clone(),
                },
                with_param(&expanded_url, page_param, "1"),
            ),
            Pagination::None => (Style::None, expanded_url),
        };
        Paginator {
            style,
            current: first.clone(),
            first,
            pages_read: 0,
            seen: HashSet::new(),
            allowed_origins: Vec::new(),
        }
    }

    /// Lets `Link` next pages lead to `origins` too (`http.allowed.origins`). Other styles
    /// never leave the first URL, whose origin is always allowed.
    pub fn allowing_origins(mut self, origins: &[Origin]) -> Paginator {
        self.allowed_origins = origins.to_vec();
        self
    }

    /// The URL of the poll's first request.
    pub fn first_url(&self) -> Url {
        self.first.clone()
    }

    /// The next page's URL after `page` (whose parsed body is `body` and which held
    /// `record_count` records), or `None` when the poll has read everything.
    pub fn next_url(
        &mut self,
        page: &Page,
        body: &serde_json::Value,
        record_count: usize,
    ) -> Result<Option<Url>, PaginationError> {
        self.pages_read += 1;
        let next = match &self.style {
            Style::None => None,
            Style::Page { param } => (record_count > 0).then(|| {
                let number = (self.pages_read + 1).to_string();
                with_param(&self.first, param, &number)
            }),
            Style::Cursor { path, param } => match cursor_value(path, body)? {
                Some(cursor) => {
                    remember(
                        &mut self.seen,
                        self.pages_read,
                        "cursor",
                        format!("cursor:{cursor}"),
                    )?;
                    Some(with_param(&self.first, param, &cursor))
                }
                None => None,
            },
            Style::Auto => self.next_auto_url(page)?,
        };
        if let Some(next) = &next {
            if self.pages_read >= MAX_PAGES {
                return Err(PaginationError::TooManyPages);
            }
            self.current = next.clone();
        }
        Ok(next)
    }

    /// Open Connectors' page token first (it is what the hub sends), then `Link: rel="next"`.
    fn next_auto_url(&mut self, page: &Page) -> Result<Option<Url>, PaginationError> {
        let token = page
            .headers
            .get(NEXT_PAGE_TOKEN_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|token| !token.is_empty());
        if let Some(token) = token {
            remember(
                &mut self.seen,
                self.pages_read,
                "page token",
                format!("token:{token}"),
            )?;
            return Ok(Some(with_param(&self.first, NEXT_PAGE_PARAM, token)));
        }
        let links = page
            .headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok());
        let Some(target) = links.flat_map(next_links).next() else {
            return Ok(None);
        };
        let next = self
            .current
            .join(&target)
            .map_err(|error| PaginationError::BadLink {
                link: target.clone(),
                reason: error.to_string(),
            })?;
        // Every page request carries the credentials: a next page elsewhere would hand them
        // to whoever the provider (or whoever wrote its Link header) names.
        let origin = next.origin();
        if origin != self.first.origin() && !self.allowed_origins.contains(&origin) {
            return Err(PaginationError::OtherOrigin {
                origin: origin.ascii_serialization(),
                resource: self.first.origin().ascii_serialization(),
            });
        }
        remember(
            &mut self.seen,
            self.pages_read,
            "next link",
            format!("link:{next}"),
        )?;
        Ok(Some(next))
    }
}

/// Records a token, cursor or link; one seen before in this poll is a loop.
fn remember(
    seen: &mut HashSet<String>,
    page: u64,
    what: &'static str,
    key: String,
) -> Result<(), PaginationError> {
    if seen.insert(key) {
        Ok(())
    } else {
        Err(PaginationError::Loop { page, what })
    }
}

/// The cursor at `path`: a non-empty string or a number; null, empty or missing ends the poll.
fn cursor_value(
    path: &FieldPath,
    body: &serde_json::Value,
) -> Result<Option<String>, PaginationError> {
    use serde_json::Value;
    match path.get(body) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other @ (Value::Bool(_) | Value::Array(_) | Value::Object(_))) => {
            Err(bad_cursor(path, json::a_type(other)))
        }
    }
}

fn bad_cursor(path: &FieldPath, found: &'static str) -> PaginationError {
    PaginationError::BadCursor {
        path: path.to_string(),
        found,
    }
}

/// True when the query has a parameter called `name`.
fn has_param(url: &Url, name: &str) -> bool {
    url.query()
        .is_some_and(|query| query.split('&').any(|pair| param_name(pair) == name))
}

/// `url` with every `name=` pair removed and `name=value` (percent-encoded) appended. The other
/// pairs are kept exactly as they were.
fn with_param(url: &Url, name: &str, value: &str) -> Url {
    let mut pairs: Vec<&str> = url
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && param_name(pair) != name)
        .collect();
    let added = format!(
        "{}={}",
        utf8_percent_encode(name, QUERY_VALUE),
        utf8_percent_encode(value, QUERY_VALUE)
    );
    pairs.push(&added);
    let mut next = url.clone();
    next.set_query(Some(&pairs.join("&")));
    next
}

fn param_name(pair: &str) -> std::borrow::Cow<'_, str> {
    let raw = pair.split('=').next().unwrap_or("");
    percent_decode_str(raw).decode_utf8_lossy()
}

/// The targets of the `rel="next"` links in one `Link` header value (RFC 8288 section 3):
/// comma-separated `<URI>; param=value` entries, values possibly quoted, `rel` possibly a
/// space-separated list of relation types.
pub fn next_links(header: &str) -> Vec<String> {
    parse_links(header)
        .into_iter()
        .filter(|link| {
            link.rel
                .split_ascii_whitespace()
                .any(|rel| rel.eq_ignore_ascii_case("next"))
        })
        .map(|link| link.target)
        .collect()
}

struct Link {
    target: String,
    rel: String,
}

fn parse_links(header: &str) -> Vec<Link> {
    let mut links = Vec::new();
    let mut rest = header;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_open) = rest.strip_prefix('<') else {
            return links;
        };
        let Some(close) = after_open.find('>') else {
            return links;
        };
        let target = after_open[..close].trim().to_owned();
        rest = &after_open[close + 1..];
        let mut rel = String::new();
        // Parameters until the comma that ends this link (commas inside quotes do not count).
        loop {
            rest = rest.trim_start();
            let Some(after_semicolon) = rest.strip_prefix(';') else {
                break;
            };
            let (name, value, remaining) = parse_param(after_semicolon);
            // RFC 8288: only the first occurrence of `rel` counts.
            if name.eq_ignore_ascii_case("rel") && rel.is_empty() {
                rel = value;
            }
            rest = remaining;
        }
        links.push(Link { target, rel });
        // Anything malformed up to the comma that starts the next link is skipped.
        match rest.find(',') {
            Some(comma) => rest = &rest[comma + 1..],
            None => return links,
        }
    }
}

/// One `name=value` or `name="quoted \"value\""` parameter; returns the rest of the input.
fn parse_param(input: &str) -> (String, String, &str) {
    let input = input.trim_start();
    let name_end = input
        .find(|c: char| c == '=' || c == ';' || c == ',' || c.is_whitespace())
        .unwrap_or(input.len());
    let name = input[..name_end].to_owned();
    let rest = input[name_end..].trim_start();
    let Some(rest) = rest.strip_prefix('=') else {
        return (name, String::new(), rest);
    };
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => return (name, value, &quoted[index + 1..]),
                other => value.push(other),
            }
        }
        return (name, value, "");
    }
    let value_end = rest.find([';', ',']).unwrap_or(rest.len());
    (
        name,
        rest[..value_end].trim().to_owned(),
        &rest[value_end..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn page_with(headers: &[(&'static str, &str)]) -> Page {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        Page {
            status: 200,
            headers: map,
            body: bytes::Bytes::new(),
            date: None,
            retries: Vec::new(),
        }
    }

    #[test]
    fn link_header_cases() {
        assert_eq!(
            next_links(r#"<https://a.example/x?page=2>; rel="next""#),
            ["https://a.example/x?page=2"]
        );
        // Several links, next not first, unquoted rel, other parameters with commas in quotes.
        assert_eq!(
            next_links(
                r#"<https://a.example/1>; rel="prev"; title="one, two", <https://a.example/3>; title="a;b"; rel=next"#
            ),
            ["https://a.example/3"]
        );
        // A rel list, upper case, a comma inside the URI, whitespace everywhere.
        assert_eq!(
            next_links(r#"  < /items?ids=1,2 > ;REL = "last NEXT" "#),
            ["/items?ids=1,2"]
        );
        // Escaped quote inside a quoted parameter does not end it.
        assert_eq!(
            next_links(r#"<a>; title="say \"hi\", ok"; rel="next""#),
            ["a"]
        );
        // The first rel wins; no next; garbage.
        assert!(next_links(r#"<a>; rel="prev"; rel="next""#).is_empty());
        assert!(next_links(r#"<a>; rel="nextish""#).is_empty());
        assert!(next_links("not a link header").is_empty());
        assert!(next_links("<unclosed; rel=next").is_empty());
    }

    #[test]
    fn auto_adds_page_size_unless_the_url_has_one() {
        let paginator = Paginator::new(
            &Pagination::Auto { page_size: 200 },
            url("https://p.example/hubs/crm/contacts?where=updated%3E%3D%272026%27"),
        );
        assert_eq!(
            paginator.first_url().as_str(),
            "https://p.example/hubs/crm/contacts?where=updated%3E%3D%272026%27&pageSize=200"
        );
        let paginator = Paginator::new(
            &Pagination::Auto { page_size: 200 },
            url("https://p.example/c?pageSize=50&q=1"),
        );
        assert_eq!(
            paginator.first_url().as_str(),
            "https://p.example/c?pageSize=50&q=1"
        );
    }

    #[test]
    fn page_token_keeps_the_url_and_encodes_the_token() {
        let mut paginator = Paginator::new(
            &Pagination::Auto { page_size: 10 },
            url("https://p.example/c?since=2026-01-01T00%3A00%3A00Z"),
        );
        let next = paginator
            .next_url(
                &page_with(&[("elements-next-page-token", "a b/c=")]),
                &json!([]),
                10,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            next.as_str(),
            "https://p.example/c?since=2026-01-01T00%3A00%3A00Z&pageSize=10&nextPage=a%20b%2Fc%3D"
        );
        let after = paginator
            .next_url(
                &page_with(&[("elements-next-page-token", "t2")]),
                &json!([]),
                10,
            )
            .unwrap()
            .unwrap();
        // The token replaces the previous one rather than piling up.
        assert_eq!(
            after.as_str(),
            "https://p.example/c?since=2026-01-01T00%3A00%3A00Z&pageSize=10&nextPage=t2"
        );
        assert_eq!(
            paginator.next_url(
                &page_with(&[("elements-next-page-token", "a b/c=")]),
                &json!([]),
                10
            ),
            Err(PaginationError::Loop {
                page: 3,
                what: "page token"
            })
        );
    }

    #[test]
    fn empty_token_and_no_link_end_the_poll() {
        let mut paginator = Paginator::new(&Pagination::default(), url("https://p.example/c"));
        assert_eq!(
            paginator.next_url(
                &page_with(&[("elements-next-page-token", " ")]),
                &json!([]),
                3
            ),
            Ok(None)
        );
    }

    #[test]
    fn relative_links_resolve_against_the_request() {
        let mut paginator = Paginator::new(
            &Pagination::default(),
            url("https://p.example/api/v1/items?x=1"),
        );
        let next = paginator
            .next_url(
                &page_with(&[("link", r#"<items?x=1&after=5>; rel="next""#)]),
                &json!([]),
                1,
            )
            .unwrap()
            .unwrap();
        assert_eq!(next.as_str(), "https://p.example/api/v1/items?x=1&after=5");
        // Two Link headers: the second carries next.
        let next = paginator
            .next_url(
                &page_with(&[
                    ("link", r#"</first>; rel="first""#),
                    ("link", r#"</api/v2?after=9>; rel="next""#),
                ]),
                &json!([]),
                1,
            )
            .unwrap()
            .unwrap();
        assert_eq!(next.as_str(), "https://p.example/api/v2?after=9");
    }

    #[test]
    fn cursor_values_and_loops() {
        let pagination = Pagination::Cursor {
            cursor_path: FieldPath::parse("meta.next"),
            cursor_param: "cursor".into(),
        };
        let mut paginator = Paginator::new(&pagination, url("https://p.example/c?since=1"));
        let page = page_with(&[]);
        let next = paginator
            .next_url(&page, &json!({"meta": {"next": "ab+c"}}), 5)
            .unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "https://p.example/c?since=1&cursor=ab%2Bc"
        );
        let next = paginator
            .next_url(&page, &json!({"meta": {"next": 42}}), 5)
            .unwrap();
        assert_eq!(
            next.unwrap().as_str(),
            "https://p.example/c?since=1&cursor=42"
        );
        assert_eq!(
            paginator.next_url(&page, &json!({"meta": {"next": ""}}), 5),
            Ok(None)
        );
        assert_eq!(
            paginator.next_url(&page, &json!({"meta": {"next": null}}), 5),
            Ok(None)
        );
        assert_eq!(paginator.next_url(&page, &json!({"meta": {}}), 5), Ok(None));
        assert!(matches!(
            paginator.next_url(&page, &json!({"meta": {"next": {"a": 1}}}), 5),
            Err(PaginationError::BadCursor {
                found: "an object",
                ..
            })
        ));
        assert_eq!(
            paginator.next_url(&page, &json!({"meta": {"next": 42}}), 5),
            Err(PaginationError::Loop {
                page: 7,
                what: "cursor"
            })
        );
    }

    #[test]
    fn page_numbers_count_until_an_empty_page() {
        let pagination = Pagination::Page {
            page_param: "page".into(),
        };
        let mut paginator = Paginator::new(&pagination, url("https://p.example/c?page=9&q=a"));
        assert_eq!(
            paginator.first_url().as_str(),
            "https://p.example/c?q=a&page=1"
        );
        let page = page_with(&[]);
        let second = paginator.next_url(&page, &json!([1]), 1).unwrap().unwrap();
        assert_eq!(second.as_str(), "https://p.example/c?q=a&page=2");
        let third = paginator.next_url(&page, &json!([1]), 1).unwrap().unwrap();
        assert_eq!(third.as_str(), "https://p.example/c?q=a&page=3");
        assert_eq!(paginator.next_url(&page, &json!([]), 0), Ok(None));
    }

    #[test]
    fn none_reads_one_page() {
        let mut paginator = Paginator::new(&Pagination::None, url("https://p.example/c"));
        assert_eq!(
            paginator.next_url(
                &page_with(&[("elements-next-page-token", "t")]),
                &json!([1]),
                1
            ),
            Ok(None)
        );
    }
}
