//! Pure description of one REST call: method, path, query, body and how to
//! interpret failures. Building the URL happens here so it can be tested
//! without a network.

use reqwest::Method;
use url::Url;

use crate::error::{ConnectError, RequestContext, Result, Semantics};

/// One REST call, independent of which worker it is sent to.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub method: Method,
    /// Path segments below the base URL, unencoded (e.g. `["connectors", name]`).
    pub segments: Vec<String>,
    /// Query pairs, unencoded, in order (repeats allowed).
    pub query: Vec<(&'static str, String)>,
    /// JSON body, already serialised. Never logged.
    pub body: Option<Vec<u8>>,
    /// Whether a success body may contain connector configuration (affects
    /// how decode errors are reported).
    pub response_may_contain_config: bool,
    pub ctx: RequestContext,
}

impl std::fmt::Debug for Endpoint {
    // Hand-written so the body (which may hold secrets) is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("method", &self.method)
            .field("segments", &self.segments)
            .field("query", &self.query)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("<{} bytes>", b.len())),
            )
            .field("operation", &self.ctx.operation)
            .finish()
    }
}

impl Endpoint {
    pub fn new(method: Method, segments: &[&str], operation: impl Into<String>) -> Self {
        let semantics = if method == Method::GET || method == Method::HEAD {
            Semantics::Read
        } else {
            Semantics::Write
        };
        Self {
            method,
            segments: segments.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: None,
            response_may_contain_config: false,
            ctx: RequestContext {
                operation: operation.into(),
                subject: None,
                connector: None,
                semantics,
                listing: false,
            },
        }
    }

    /// Marks the call as the connector listing (`GET /connectors`, with or without `expand`).
    pub fn listing(mut self) -> Self {
        self.ctx.listing = true;
        self
    }

    /// Marks the call as concerning connector `name` (for 404 wording and
    /// offsets errors).
    pub fn for_connector(mut self, name: &str) -> Self {
        self.ctx.connector = Some(name.to_string());
        if self.ctx.subject.is_none() {
            self.ctx.subject = Some(format!("connector '{name}'"));
        }
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.ctx.subject = Some(subject.into());
        self
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// Overrides the read/write classification (e.g. validate is a PUT that
    /// changes nothing).
    pub fn read_only(mut self) -> Self {
        self.ctx.semantics = Semantics::Read;
        self
    }

    pub fn config_in_response(mut self) -> Self {
        self.response_may_contain_config = true;
        self
    }

    pub fn json_body<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|e| ConnectError::InvalidRequest {
            operation: self.ctx.operation.clone(),
            message: format!(
                "could not serialise the request body ({:?} error); this is a bug in lockstep",
                e.classify()
            ),
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// The full URL on worker `base`. Each segment is percent-encoded as a
    /// single path segment (so `/`, `?`, `#`, `%` and spaces in connector
    /// names cannot change the path), and any path prefix of `base` (e.g. a
    /// reverse-proxy mount point) is kept.
    pub fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(self.segments.iter().map(String::as_str));
        }
        // `base` is validated to be http(s), which always has a path, so the
        // `Err` branch above cannot happen.
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
        url
    }
}

/// Rejects names that cannot be expressed as one URL path segment or that
/// Connect would refuse anyway, before anything is sent.
pub(crate) fn check_name(kind: &str, name: &str, operation: &str) -> Result<()> {
    let problem = if name.trim().is_empty() {
        Some(format!("the {kind} name is empty"))
    } else if name == "." || name == ".." {
        Some(format!(
            "the {kind} name '{name}' cannot be used in a URL path (it would be normalised away)"
        ))
    } else if name.chars().any(char::is_control) {
        Some(format!("the {kind} name contains control characters"))
    } else {
        None
    };
    match problem {
        Some(p) => Err(ConnectError::InvalidRequest {
            operation: operation.to_string(),
            message: format!("{p}; use the exact name shown by `GET /connectors`"),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn awkward_connector_names_are_single_encoded_segments() {
        let cases: &[(&str, &str)] = &[
            ("inventory", "http://w1:8083/connectors/inventory/status"),
            (
                "my connector",
                "http://w1:8083/connectors/my%20connector/status",
            ),
            ("a/b", "http://w1:8083/connectors/a%2Fb/status"),
            ("a?b#c", "http://w1:8083/connectors/a%3Fb%23c/status"),
            ("100%", "http://w1:8083/connectors/100%25/status"),
            ("..x", "http://w1:8083/connectors/..x/status"),
            (
                "ünïcode",
                "http://w1:8083/connectors/%C3%BCn%C3%AFcode/status",
            ),
        ];
        for (name, expected) in cases {
            let ep = Endpoint::new(Method::GET, &["connectors", name, "status"], "status");
            assert_eq!(
                ep.url(&base("http://w1:8083")).as_str(),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn base_path_prefix_and_trailing_slash_are_kept() {
        let ep = Endpoint::new(Method::GET, &["connectors", "x"], "get");
        for b in ["https://gw.example/connect", "https://gw.example/connect/"] {
            assert_eq!(
                ep.url(&base(b)).as_str(),
                "https://gw.example/connect/connectors/x"
            );
        }
        let root = Endpoint::new(Method::GET, &[], "info");
        assert_eq!(
            root.url(&base("http://w1:8083")).as_str(),
            "http://w1:8083/"
        );
    }

    #[test]
    fn query_pairs_are_encoded_and_repeatable() {
        let ep = Endpoint::new(Method::GET, &["connectors"], "list")
            .query("expand", "status")
            .query("expand", "info");
        assert_eq!(
            ep.url(&base("http://w1:8083")).as_str(),
            "http://w1:8083/connectors?expand=status&expand=info"
        );
        let ep = Endpoint::new(Method::PUT, &["admin", "loggers", "io.debezium"], "log")
            .query("scope", "cluster");
        assert_eq!(
            ep.url(&base("http://w1:8083/")).as_str(),
            "http://w1:8083/admin/loggers/io.debezium?scope=cluster"
        );
    }

    #[test]
    fn plugin_class_with_dollar_is_encoded() {
        let ep = Endpoint::new(
            Method::PUT,
            &[
                "connector-plugins",
                "org.apache.kafka.connect.transforms.ReplaceField$Value",
                "config",
                "validate",
            ],
            "validate",
        );
        let url = ep.url(&base("http://w1:8083"));
        assert_eq!(url.path_segments().map(|s| s.count()), Some(4));
        assert!(
            url.as_str().contains("ReplaceField$Value")
                || url.as_str().contains("ReplaceField%24Value")
        );
    }

    #[test]
    fn semantics_follow_method() {
        assert_eq!(
            Endpoint::new(Method::GET, &[], "x").ctx.semantics,
            Semantics::Read
        );
        assert_eq!(
            Endpoint::new(Method::POST, &[], "x").ctx.semantics,
            Semantics::Write
        );
        assert_eq!(
            Endpoint::new(Method::PUT, &[], "x")
                .read_only()
                .ctx
                .semantics,
            Semantics::Read
        );
    }

    #[test]
    fn names_that_cannot_be_paths_are_rejected() {
        for bad in ["", "  ", ".", "..", "a\nb"] {
            assert!(check_name("connector", bad, "op").is_err(), "{bad:?}");
        }
        for ok in ["a", "a b", "a/b", "..x", "ünïcode"] {
            assert!(check_name("connector", ok, "op").is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn debug_never_prints_body() {
        let ep = Endpoint::new(Method::PUT, &["connectors", "x", "config"], "put")
            .json_body(&serde_json::json!({"database.password": "hunter2"}))
            .unwrap();
        let dbg = format!("{ep:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
