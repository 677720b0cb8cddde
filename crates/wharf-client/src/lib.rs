//! A typed client for wharf's HTTP API, used by the CLI (and usable by any Rust program).
//!
//! Request and response bodies are the `wharf_core::api` types the server itself serves, so the
//! two can't drift apart. Lists follow the server's `Next-Range` header until every item (or as
//! many as asked for) has arrived.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, RANGE};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wharf_core::api::{
    self, Account, App, AppCreate, AppUpdate, Build, BuildCreate, ConfigVarsBody, Dyno, ErrorBody,
    Formation, FormationBatchUpdate, LogSession, LogSessionCreate, Release, Source,
};

/// What can go wrong talking to wharf.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not an http(s) URL.
    #[error("`{0}` is not a valid wharf URL: use e.g. http://127.0.0.1:7070")]
    InvalidUrl(String),
    /// Nothing answered at the URL.
    #[error("cannot reach wharf at {url}: is `wharf server` running?")]
    Unreachable { url: String, source: reqwest::Error },
    /// The server answered with an error.
    #[error("{message}")]
    Api {
        status: StatusCode,
        id: String,
        message: String,
    },
    /// The server's answer was not what the API promises.
    #[error("unexpected answer from wharf at {url}: {detail}")]
    Protocol { url: String, detail: String },
}

impl ClientError {
    /// The API's error id (`not_found`, `unauthorized`, …), if the server sent one.
    pub fn api_id(&self) -> Option<&str> {
        match self {
            ClientError::Api { id, .. } => Some(id),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A connection to one wharf server, as one user.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client for the server at `base_url`, sending `token` with every request.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client> {
        let base =
            Url::parse(base_url).map_err(|_| ClientError::InvalidUrl(base_url.to_owned()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("wharf-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Unreachable {
                url: base_url.to_owned(),
                source,
            })?;
        Ok(Client { http, base, token })
    }

    /// The server's URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        self.request_accepting(method, segments, api::HEROKU_MEDIA_TYPE)
    }

    /// A request for `accept` (a media type) rather than the API's JSON.
    fn request_accepting(
        &self,
        method: Method,
        segments: &[&str],
        accept: &str,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, self.url(segments))
            .header(ACCEPT, accept);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base_url().to_owned(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status,
                id: body.id,
                message: body.message,
            },
            Err(_) => ClientError::Protocol {
                url: self.base_url().to_owned(),
                detail: format!("HTTP {status} without an error body (is this a wharf server?)"),
            },
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
            url,
            detail: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T> {
        self.json(self.request(Method::GET, segments)).await
    }

    async fn with_body<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T> {
        self.json(self.request(method, segments).json(body)).await
    }

    /// Every item of a list, following `Next-Range`, starting from `range` (the server's default
    /// order when `None`), stopping once `limit` items have arrived.
    async fn list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        range: Option<String>,
        limit: Option<usize>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut range = range;
        loop {
            let mut request = self.request(Method::GET, segments);
            if let Some(range) = &range {
                request = request.header(RANGE, range);
            }
            let response = self.send(request).await?;
            let next = response
                .headers()
                .get("next-range")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let url = response.url().to_string();
            let bytes = response
                .bytes()
                .await
                .map_err(|source| ClientError::Unreachable {
                    url: url.clone(),
                    source,
                })?;
            let page: Vec<T> =
                serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol {
                    url,
                    detail: e.to_string(),
                })?;
            items.extend(page);
            if let Some(limit) = limit {
                if items.len() >= limit {
                    items.truncate(limit);
                    return Ok(items);
                }
            }
            match next {
                Some(next) if Some(&next) != range.as_ref() => range = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<api::Health> {
        self.get(&["healthz"]).await
    }

    /// The account the token belongs to.
    pub async fn account(&self) -> Result<Account> {
        self.get(&["account"]).await
    }

    /// The account's live API tokens, without their secrets.
    pub async fn tokens(&self) -> Result<Vec<api::Authorization>> {
        self.get(&["oauth", "authorizations"]).await
    }

    /// Makes an API token; the answer carries its secret, once.
    pub async fn create_token(&self, description: Option<String>) -> Result<api::Authorization> {
        let body = api::AuthorizationCreate {
            description,
            ..api::AuthorizationCreate::default()
        };
        self.with_body(Method::POST, &["oauth", "authorizations"], &body)
            .await
    }

    /// Revokes an API token.
    pub async fn revoke_token(&self, id: &str) -> Result<api::Authorization> {
        self.json(self.request(Method::DELETE, &["oauth", "authorizations", id]))
            .await
    }

    /// Every app, sorted by name.
    pub async fn apps(&self) -> Result<Vec<App>> {
        self.list(&["apps"], Some("name ..; max=1000".to_owned()), None)
            .await
    }

    pub async fn create_app(&self, body: &AppCreate) -> Result<App> {
        self.with_body(Method::POST, &["apps"], body).await
    }

    pub async fn app(&self, app: &str) -> Result<App> {
        self.get(&["apps", app]).await
    }

    pub async fn update_app(&self, app: &str, body: &AppUpdate) -> Result<App> {
        self.with_body(Method::PATCH, &["apps", app], body).await
    }

    /// The app's hostnames: its default one, then its custom domains.
    pub async fn domains(&self, app: &str) -> Result<Vec<api::Domain>> {
        self.get(&["apps", app, "domains"]).await
    }

    pub async fn add_domain(&self, app: &str, hostname: &str) -> Result<api::Domain> {
        let body = api::DomainCreate {
            hostname: hostname.to_owned(),
            sni_endpoint: None,
        };
        self.with_body(Method::POST, &["apps", app, "domains"], &body)
            .await
    }

    /// Chooses the certificate a custom domain is served with (`None`: any that covers it).
    pub async fn update_domain(
        &self,
        app: &str,
        domain: &str,
        sni_endpoint: Option<&str>,
    ) -> Result<api::Domain> {
        let body = api::DomainUpdate {
            sni_endpoint: sni_endpoint.map(str::to_owned),
        };
        self.with_body(Method::PATCH, &["apps", app, "domains", domain], &body)
            .await
    }

    /// The app's TLS certificates (SNI endpoints).
    pub async fn certs(&self, app: &str) -> Result<Vec<api::SniEndpoint>> {
        self.get(&["apps", app, "sni-endpoints"]).await
    }

    pub async fn cert(&self, app: &str, cert: &str) -> Result<api::SniEndpoint> {
        self.get(&["apps", app, "sni-endpoints", cert]).await
    }

    /// Adds a certificate (PEM chain) with its private key (PEM).
    pub async fn add_cert(&self, app: &str, chain: &str, key: &str) -> Result<api::SniEndpoint> {
        let body = api::SniEndpointCreate {
            certificate_chain: chain.to_owned(),
            private_key: key.to_owned(),
        };
        self.with_body(Method::POST, &["apps", app, "sni-endpoints"], &body)
            .await
    }

    /// Replaces a certificate and its key.
    pub async fn update_cert(
        &self,
        app: &str,
        cert: &str,
        chain: &str,
        key: &str,
    ) -> Result<api::SniEndpoint> {
        let body = api::SniEndpointCreate {
            certificate_chain: chain.to_owned(),
            private_key: key.to_owned(),
        };
        self.with_body(Method::PATCH, &["apps", app, "sni-endpoints", cert], &body)
            .await
    }

    /// Turns Automated Certificate Management on (`Some(true)`), off (`Some(false)`), or
    /// retries its failing domains now (`None`).
    pub async fn acm(&self, app: &str, on: Option<bool>) -> Result<App> {
        let method = match on {
            Some(true) => Method::POST,
            Some(false) => Method::DELETE,
            None => Method::PATCH,
        };
        self.with_body(method, &["apps", app, "acm"], &serde_json::json!({}))
            .await
    }

    pub async fn remove_cert(&self, app: &str, cert: &str) -> Result<api::SniEndpoint> {
        self.json(self.request(Method::DELETE, &["apps", app, "sni-endpoints", cert]))
            .await
    }

    /// Removes a custom domain, by hostname or id.
    pub async fn remove_domain(&self, app: &str, domain: &str) -> Result<api::Domain> {
        self.json(self.request(Method::DELETE, &["apps", app, "domains", domain]))
            .await
    }

    pub async fn delete_app(&self, app: &str) -> Result<App> {
        self.json(self.request(Method::DELETE, &["apps", app]))
            .await
    }

    pub async fn config_vars(&self, app: &str) -> Result<ConfigVarsBody> {
        self.get(&["apps", app, "config-vars"]).await
    }

    /// Sets (`Some`) and removes (`None`) config vars; returns every config var after the change.
    pub async fn update_config_vars(
        &self,
        app: &str,
        changes: &BTreeMap<String, Option<String>>,
    ) -> Result<ConfigVarsBody> {
        self.with_body(Method::PATCH, &["apps", app, "config-vars"], changes)
            .await
    }

    /// The app's newest releases, newest first; all of them when `limit` is `None`.
    pub async fn releases(&self, app: &str, limit: Option<usize>) -> Result<Vec<Release>> {
        let max = limit.unwrap_or(1000).clamp(1, 1000);
        self.list(
            &["apps", app, "releases"],
            Some(format!("version ..; max={max}, order=desc")),
            limit,
        )
        .await
    }

    /// One release, by version (`3`, `v3`) or id.
    pub async fn release(&self, app: &str, release: &str) -> Result<Release> {
        self.get(&["apps", app, "releases", release]).await
    }

    /// The config vars a release runs with.
    pub async fn release_config_vars(&self, app: &str, release: &str) -> Result<ConfigVarsBody> {
        self.get(&["apps", app, "releases", release, "config-vars"])
            .await
    }

    /// Rolls back (`release`) or releases an existing image (`slug`).
    pub async fn create_release(&self, app: &str, body: &api::ReleaseCreate) -> Result<Release> {
        self.with_body(Method::POST, &["apps", app, "releases"], body)
            .await
    }

    /// Rebases the app's current release onto its stack's newest run image: a new release.
    pub async fn rebase(&self, app: &str) -> Result<Release> {
        self.json(self.request(Method::POST, &["apps", app, "rebase"]))
            .await
    }

    /// What changed from release `from` to release `to`.
    pub async fn release_diff(
        &self,
        app: &str,
        from: &str,
        to: &str,
        show_values: bool,
    ) -> Result<api::ReleaseDiff> {
        let request = self
            .request(Method::GET, &["apps", app, "releases", from, "diff", to])
            .query(&[("show_values", show_values)]);
        self.json(request).await
    }

    /// Every stack.
    pub async fn stacks(&self) -> Result<Vec<api::Stack>> {
        self.get(&["stacks"]).await
    }

    /// One stack, by name or id.
    pub async fn stack(&self, stack: &str) -> Result<api::Stack> {
        self.get(&["stacks", stack]).await
    }

    /// Starts making one of wharf's stacks.
    pub async fn make_stack(&self, name: &str) -> Result<api::Stack> {
        let body = api::StackCreate {
            name: name.to_owned(),
            run_image: None,
            build_image: None,
        };
        self.with_body(Method::POST, &["stacks"], &body).await
    }

    /// Starts importing a stack's run and build images (skopeo references the server reads).
    pub async fn import_stack(&self, name: &str, run: &str, build: &str) -> Result<api::Stack> {
        let body = api::StackCreate {
            name: name.to_owned(),
            run_image: Some(run.to_owned()),
            build_image: Some(build.to_owned()),
        };
        self.with_body(Method::POST, &["stacks"], &body).await
    }

    /// Collects garbage now.
    /// Pushes `release`'s image (the current release's if `None`) to the server's registry;
    /// answers once it is there.
    pub async fn registry_push(
        &self,
        app: &str,
        release: Option<&str>,
    ) -> Result<api::RegistryPush> {
        let request = self
            .request(Method::POST, &["apps", app, "registry-pushes"])
            // A stack image is a few hundred MB: as long as the copy takes.
            .timeout(Duration::from_secs(60 * 60))
            .json(&api::RegistryPushCreate {
                release: release.map(str::to_owned),
            });
        self.json(request).await
    }

    /// The Kubernetes objects of `release` (a version; the current release if `None`).
    pub async fn release_manifests(
        &self,
        app: &str,
        release: Option<&str>,
    ) -> Result<api::ReleaseManifests> {
        let release = release.unwrap_or("current");
        self.json(
            self.request(
                Method::GET,
                &["apps", app, "releases", release, "manifests"],
            )
            // Pushing the image to WHARF_REGISTRY_URL first takes as long as the copy.
            .timeout(Duration::from_secs(60 * 60)),
        )
        .await
    }

    /// [`Client::release_manifests`] as YAML, one document per object.
    pub async fn release_manifests_yaml(&self, app: &str, release: Option<&str>) -> Result<String> {
        let release = release.unwrap_or("current");
        let request = self
            .request_accepting(
                Method::GET,
                &["apps", app, "releases", release, "manifests"],
                "application/yaml",
            )
            .timeout(Duration::from_secs(60 * 60));
        let response = self.send(request).await?;
        let url = response.url().to_string();
        response
            .text()
            .await
            .map_err(|source| ClientError::Unreachable { url, source })
    }

    pub async fn gc(&self) -> Result<api::GarbageCollection> {
        self.json(self.request(Method::POST, &["gc"])).await
    }

    /// Makes a source to upload an archive to.
    pub async fn create_source(&self) -> Result<Source> {
        self.json(self.request(Method::POST, &["sources"])).await
    }

    /// Uploads `body` (a gzipped tar of `len` bytes) to a source's signed `put_url`.
    pub async fn upload_source(
        &self,
        put_url: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<serde_json::Value> {
        let request = self
            .http
            .put(put_url)
            .header(reqwest::header::CONTENT_TYPE, "application/gzip")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .timeout(Duration::from_secs(60 * 60))
            .body(body);
        self.json(request).await
    }

    /// Starts a build of an uploaded source.
    pub async fn create_build(&self, app: &str, body: &BuildCreate) -> Result<Build> {
        self.with_body(Method::POST, &["apps", app, "builds"], body)
            .await
    }

    /// One build of the app.
    pub async fn build(&self, app: &str, id: &str) -> Result<Build> {
        self.get(&["apps", app, "builds", id]).await
    }

    /// The app's newest builds, newest first.
    pub async fn builds(&self, app: &str, limit: Option<usize>) -> Result<Vec<Build>> {
        let max = limit.unwrap_or(1000).clamp(1, 1000);
        self.list(
            &["apps", app, "builds"],
            Some(format!("created_at ..; max={max}, order=desc")),
            limit,
        )
        .await
    }

    /// Opens a build's or a release phase's `output_stream_url`; the response body is the
    /// output, as it happens.
    pub async fn output_stream(&self, output_stream_url: &str) -> Result<reqwest::Response> {
        // The stream lasts as long as the work: no overall timeout, only the connect timeout.
        let request = self
            .http
            .get(output_stream_url)
            .timeout(Duration::from_secs(24 * 60 * 60));
        self.send(request).await
    }
    /// The app's formation, by process type.
    pub async fn formation(&self, app: &str) -> Result<Vec<Formation>> {
        self.get(&["apps", app, "formation"]).await
    }

    /// Scales or resizes several process types at once.
    pub async fn update_formation(
        &self,
        app: &str,
        body: &FormationBatchUpdate,
    ) -> Result<Vec<Formation>> {
        self.with_body(Method::PATCH, &["apps", app, "formation"], body)
            .await
    }

    /// The app's running instances.
    pub async fn dynos(&self, app: &str) -> Result<Vec<Dyno>> {
        self.get(&["apps", app, "dynos"]).await
    }

    /// Restarts every instance (`None`), a process type (`web`) or one instance (`web.1`).
    pub async fn restart(&self, app: &str, target: Option<&str>) -> Result<()> {
        let request = match target {
            None => self.request(Method::DELETE, &["apps", app, "dynos"]),
            Some(t) if t.contains('.') => self.request(Method::DELETE, &["apps", app, "dynos", t]),
            Some(t) => self.request(Method::DELETE, &["apps", app, "formations", t]),
        };
        self.send(request).await.map(drop)
    }

    /// Stops a process type (`web`) or one instance (`web.1`); the formation starts them anew.
    pub async fn stop(&self, app: &str, target: &str) -> Result<()> {
        let request = if target.contains('.') {
            self.request(
                Method::POST,
                &["apps", app, "dynos", target, "actions", "stop"],
            )
        } else {
            self.request(
                Method::POST,
                &["apps", app, "formations", target, "actions", "stop"],
            )
        };
        self.send(request).await.map(drop)
    }

    /// Opens a log session; read its `logplex_url` with [`Client::log_stream`].
    pub async fn log_session(&self, app: &str, body: &LogSessionCreate) -> Result<LogSession> {
        self.with_body(Method::POST, &["apps", app, "log-sessions"], body)
            .await
    }

    /// Opens a session's event stream, resuming after `last_event_id`.
    pub async fn log_stream(
        &self,
        logplex_url: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut request = self
            .http
            .get(logplex_url)
            .header(ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(7 * 24 * 60 * 60));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        self.send(request).await
    }
    /// Runs `command` as a detached one-off process; its output goes to the app's log.
    pub async fn run_detached(&self, app: &str, command: &str) -> Result<Dyno> {
        self.with_body(
            Method::POST,
            &["apps", app, "dynos"],
            &serde_json::json!({ "command": command, "attach": false }),
        )
        .await
    }

    /// Runs `command` attached: `stdin` streams to the process; the response streams its output
    /// in frames (`o`/`x`, big-endian u32 length, payload) ending with the exit status. With a
    /// `terminal`, the process runs in one of that size and `stdin` is typed at it.
    pub async fn run_attached(
        &self,
        app: &str,
        command: &str,
        terminal: Option<&Terminal>,
        stdin: reqwest::Body,
    ) -> Result<reqwest::Response> {
        let mut url = self.url(&["apps", app, "run"]);
        url.query_pairs_mut().append_pair("command", command);
        if let Some(terminal) = terminal {
            url.query_pairs_mut()
                .append_pair("tty", "true")
                .append_pair("rows", &terminal.rows.to_string())
                .append_pair("cols", &terminal.cols.to_string());
            if let Some(term) = &terminal.term {
                url.query_pairs_mut().append_pair("term", term);
            }
        }
        let mut request = self
            .http
            .post(url)
            .header(ACCEPT, "application/vnd.wharf.attach")
            .timeout(Duration::from_secs(7 * 24 * 60 * 60))
            .body(stdin);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request).await
    }
}

/// The terminal an attached one-off runs in: its size in character cells, and its type
/// (`TERM`), if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub rows: u16,
    pub cols: u16,
    pub term: Option<String>,
}
