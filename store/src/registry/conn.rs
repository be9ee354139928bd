//! One registry (and its mirrors, for pulls) as oci-client reaches it:
//! TLS and plain-HTTP settings, credentials, timeouts, and the mapping of
//! oci-client's errors to one-line [`RegistryError`]s.

use std::sync::{Mutex, Once};

use oci_client::Client;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use super::{Auth, Options, RegistryConfig, RegistryError, Result};

/// rustls needs a process-wide crypto provider: ring (not aws-lc).
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider is installed already: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Where a pull's requests go: each mirror in order, then the registry.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `host[:port]`, as requests address it.
    pub host: String,
    pub mirror: bool,
}

pub(crate) struct Conn {
    pub client: Client,
    /// The reference asked for (its registry is the last endpoint).
    pub reference: Reference,
    /// For error messages.
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    /// Mirrors that failed: skipped for the rest of the operation.
    failed: Mutex<Vec<bool>>,
    /// Logging in to the registry failed, with mirrors to try first: the
    /// error, returned if the pull comes to need the registry.
    login_error: Mutex<Option<RegistryError>>,
    pub auth: RegistryAuth,
}

impl Conn {
    /// `with_mirrors`: pulls use the registry's mirrors, pushes never.
    pub fn new(
        config: &RegistryConfig,
        auth: &Auth,
        reference: &Reference,
        opts: &Options,
        with_mirrors: bool,
    ) -> Result<Conn> {
        install_crypto_provider();
        let name = reference.whole();
        let registry = reference.resolve_registry().to_string();

        let mut endpoints = Vec::new();
        let mut plain_http: Vec<String> = config
            .insecure
            .iter()
            .map(|h| strip_scheme(h).0.to_string())
            .collect();
        if with_mirrors {
            let mirrors = config
                .mirrors
                .get(reference.registry())
                .or_else(|| config.mirrors.get(&registry));
            for m in mirrors.into_iter().flatten() {
                let (host, http) = strip_scheme(m);
                if host.is_empty() || host == registry {
                    continue;
                }
                if http {
                    plain_http.push(host.to_string());
                }
                endpoints.push(Endpoint {
                    host: host.to_string(),
                    mirror: true,
                });
            }
        }
        endpoints.push(Endpoint {
            host: registry.clone(),
            mirror: false,
        });

        let mut roots = Vec::new();
        for path in &config.ca_certs {
            let data = std::fs::read(path).map_err(|e| RegistryError::Registry {
                reference: name.clone(),
                message: format!("CA certificate {}: {e}", path.display()),
            })?;
            roots.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }

        let client_config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain_http),
            extra_root_certificates: roots,
            platform_resolver: None,
            use_monolithic_push: true,
            max_concurrent_download: downloads(config),
            max_concurrent_upload: uploads(config),
            connect_timeout: Some(opts.connect_timeout),
            read_timeout: Some(opts.idle_timeout),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(client_config).map_err(|e| RegistryError::Registry {
            reference: name.clone(),
            message: format!("HTTP client setup: {}", chain(&e)),
        })?;
        let failed = Mutex::new(vec![false; endpoints.len()]);
        Ok(Conn {
            client,
            reference: reference.clone(),
            name,
            endpoints,
            failed,
            login_error: Mutex::new(None),
            auth: match auth {
                Auth::Anonymous => RegistryAuth::Anonymous,
                Auth::Basic { username, password } => {
                    RegistryAuth::Basic(username.clone(), password.clone())
                }
            },
        })
    }

    /// Log in to the registry for `op`: fetch a bearer token if it asks for
    /// one, so bad credentials or an unreachable or untrusted registry fail
    /// here, with a clear error, rather than as an anonymous 401 later.
    /// Mirrors are reached anonymously (the registry's credentials are not
    /// sent to another host).
    pub async fn login(&self, op: RegistryOperation) -> Result<()> {
        for (i, ep) in self.endpoints.iter().enumerate() {
            if ep.mirror {
                self.client
                    .store_auth_if_needed(&ep.host, &RegistryAuth::Anonymous)
                    .await;
                continue;
            }
            let r = self.at(i, None);
            if let Err(e) = self.client.auth(&r, &self.auth, op).await {
                let err = self.error("logging in", &e);
                if i == 0 {
                    return Err(err);
                }
                // Mirrors may serve the pull without the registry.
                tracing::warn!(reference = %self.name, "{err}; trying the mirrors");
                *self.login_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(err);
                self.failed.lock().unwrap_or_else(|e| e.into_inner())[i] = true;
            }
        }
        Ok(())
    }

    /// The reference on endpoint `i`, by `digest` if given.
    pub fn at(&self, i: usize, digest: Option<&str>) -> Reference {
        let ep = &self.endpoints[i];
        if !ep.mirror {
            return match digest {
                Some(d) => self.reference.clone_with_digest(d.to_string()),
                None => self.reference.clone(),
            };
        }
        let repo = self.reference.repository().to_string();
        match (digest, self.reference.digest(), self.reference.tag()) {
            (Some(d), _, _) | (None, Some(d), _) => {
                Reference::with_digest(ep.host.clone(), repo, d.to_string())
            }
            (None, None, tag) => {
                Reference::with_tag(ep.host.clone(), repo, tag.unwrap_or("latest").into())
            }
        }
    }

    /// Endpoints still worth trying, in order.
    pub fn live_endpoints(&self) -> Vec<usize> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        (0..self.endpoints.len()).filter(|&i| !failed[i]).collect()
    }

    /// Why no endpoint is left: the registry's login error if it had one.
    pub fn none_left(&self, what: &str) -> RegistryError {
        let login = self.login_error.lock().unwrap_or_else(|e| e.into_inner());
        match &*login {
            Some(RegistryError::Connect { reference, message }) => RegistryError::Connect {
                reference: reference.clone(),
                message: format!("{what}: the mirrors failed, and {message}"),
            },
            Some(RegistryError::Unauthorized { reference, message }) => {
                RegistryError::Unauthorized {
                    reference: reference.clone(),
                    message: format!("{what}: the mirrors failed, and {message}"),
                }
            }
            Some(e) => RegistryError::Registry {
                reference: self.name.clone(),
                message: format!("{what}: the mirrors failed, and {e}"),
            },
            None => RegistryError::Registry {
                reference: self.name.clone(),
                message: format!("{what}: every mirror failed"),
            },
        }
    }

    /// A mirror failed: say so and skip it from now on. The registry itself
    /// is never skipped.
    pub fn mirror_failed(&self, i: usize, what: &str, err: &dyn std::fmt::Display) {
        if !self.endpoints[i].mirror {
            return;
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if !failed[i] {
            failed[i] = true;
            tracing::warn!(
                mirror = %self.endpoints[i].host,
                reference = %self.name,
                "mirror failed {what}, skipping it: {err}"
            );
        }
    }

    pub fn is_mirror(&self, i: usize) -> bool {
        self.endpoints[i].mirror
    }

    /// `err`, which happened while doing `what`, as a one-line error.
    pub fn error(&self, what: &str, err: &OciDistributionError) -> RegistryError {
        let reference = self.name.clone();
        let message = format!("{what}: {}", describe(err));
        match classify(err) {
            Class::Unauthorized => RegistryError::Unauthorized { reference, message },
            Class::NotFound => RegistryError::NotFound { reference, message },
            Class::Connect => RegistryError::Connect { reference, message },
            Class::Other => RegistryError::Registry { reference, message },
        }
    }
}

pub(crate) fn downloads(config: &RegistryConfig) -> usize {
    match config.max_concurrent_downloads {
        0 => 3,
        n => n,
    }
}

pub(crate) fn uploads(config: &RegistryConfig) -> usize {
    match config.max_concurrent_uploads {
        0 => 5,
        n => n,
    }
}

/// `http://host` → (`host`, true); `https://host` and `host` → (`host`, false).
fn strip_scheme(s: &str) -> (&str, bool) {
    let s = s.trim().trim_end_matches('/');
    if let Some(h) = s.strip_prefix("http://") {
        (h, true)
    } else {
        (s.strip_prefix("https://").unwrap_or(s), false)
    }
}

enum Class {
    Unauthorized,
    NotFound,
    Connect,
    Other,
}

fn classify(err: &OciDistributionError) -> Class {
    use OciDistributionError as E;
    match err {
        E::UnauthorizedError { .. } | E::AuthenticationFailure(_) => Class::Unauthorized,
        E::ServerError { code: 401, .. } | E::ServerError { code: 403, .. } => Class::Unauthorized,
        E::ServerError { code: 404, .. } => Class::NotFound,
        E::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}", e.code).to_ascii_uppercase())
                .collect();
            if codes
                .iter()
                .any(|c| c.contains("UNAUTHORIZED") || c.contains("DENIED"))
            {
                Class::Unauthorized
            } else if codes
                .iter()
                .any(|c| c.contains("UNKNOWN") || c == "NOTFOUND")
            {
                Class::NotFound
            } else {
                Class::Other
            }
        }
        E::RequestError(e) if e.status().is_some_and(|s| s == 401 || s == 403) => {
            Class::Unauthorized
        }
        E::RequestError(e) if e.status().is_some_and(|s| s == 404) => Class::NotFound,
        E::RequestError(e) if e.is_connect() || e.is_timeout() => Class::Connect,
        E::RequestError(e) if e.status().is_none() && !e.is_body() && !e.is_decode() => {
            Class::Connect
        }
        _ => Class::Other,
    }
}

/// One line for an oci-client error, with the causes reqwest hides in its
/// source chain (TLS verdicts, refused connections) and a hint for the
/// common misconfigurations.
pub(crate) fn describe(err: &OciDistributionError) -> String {
    use OciDistributionError as E;
    let text = match err {
        E::UnauthorizedError { url } => {
            format!("401 Unauthorized from {url} (wrong or missing credentials)")
        }
        E::AuthenticationFailure(reason) => {
            format!("the token server refused the credentials: {}", clip(reason))
        }
        E::ServerError { code, url, message } => {
            format!("HTTP {code} from {url}: {}", clip(message))
        }
        E::RegistryError { envelope, url } => {
            let errs: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            format!("{} ({url})", clip(&errs.join("; ")))
        }
        other => chain(other),
    };
    let lower = text.to_ascii_lowercase();
    let hint = if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        " (the registry may speak plain HTTP: list it in insecure-registries)"
    } else if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") {
        " (add the registry's CA certificate to the trusted CA certificates)"
    } else {
        ""
    };
    one_line(&format!("{text}{hint}"))
}

/// An error and its sources, joined: "a: b: c" without repeats.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    // reqwest's and hyper's wrappers that say nothing the cause does not.
    const NOISE: &[&str] = &[
        "error decoding response body",
        "request or response body error",
        "error reading a body from connection",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    if parts.len() > 1 {
        let last = parts.pop().unwrap_or_default();
        parts.retain(|p| !NOISE.contains(&p.as_str()));
        parts.push(last);
    }
    one_line(&parts.join(": "))
}

fn clip(s: &str) -> String {
    let s = one_line(s);
    if s.len() > 300 {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s
    }
}

pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
