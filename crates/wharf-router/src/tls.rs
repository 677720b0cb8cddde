//! TLS termination: the certificates the router serves, chosen by SNI, and the server side of
//! every TLS connection (TLS 1.2 and 1.3 only, HTTP/2 or HTTP/1.1 by ALPN). The set of
//! certificates is replaced whole and swapped atomically: a handshake picks its certificate
//! from the set of that moment, and connections already open keep theirs.
//!
//! [`Certificate::from_pem`] is where a certificate and key from outside (an upload, an ACME
//! order) are checked: a chain that parses, a key that is the certificate's, dates that hold.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocols offered to clients, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate and key can't be used; each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate chain holds no PEM certificate (`-----BEGIN CERTIFICATE-----`): give the certificate first, then its intermediates")]
    NoCertificate,
    #[error("the certificate chain can't be read: {0}")]
    BadCertificate(String),
    #[error("the private key can't be read: give one PEM private key (`-----BEGIN PRIVATE KEY-----`, RSA or EC), unencrypted")]
    BadKey,
    #[error("the private key is not the certificate's: the key that signed the certificate request goes with it")]
    KeyMismatch,
    #[error("the certificate expired on {0}: renew it with its issuer and upload the new one")]
    Expired(String),
    #[error("the certificate is not valid until {0}")]
    NotYetValid(String),
    #[error("the certificate names no DNS hostname (subjectAltName or common name)")]
    NoHostnames,
}

/// A checked certificate with its key, ready to serve, and what it says about itself.
#[derive(Clone)]
pub struct Certificate {
    /// Hostnames it is for (subjectAltName DNS names, else the common name), lowercase; a
    /// wildcard is `*.example.com`.
    pub hostnames: Vec<String>,
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// Issued by itself (subject and issuer the same, and its own key verifies it).
    pub self_signed: bool,
    pub(crate) key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("hostnames", &self.hostnames)
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Seconds since the epoch as an RFC 3339 time (UTC), as the API and errors show dates.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

impl Certificate {
    /// Reads a PEM chain (the certificate first) and its PEM private key, and checks that the
    /// key is the certificate's.
    pub fn from_pem(chain: &str, key: &str) -> Result<Certificate, CertificateError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertificateError::BadCertificate(e.to_string()))?;
        let Some(leaf) = certs.first() else {
            return Err(CertificateError::NoCertificate);
        };
        let key_der =
            PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| CertificateError::BadKey)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| CertificateError::BadCertificate(e.to_string()))?;
        let signing_key = provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|_| CertificateError::BadKey)?;
        let certified = CertifiedKey::new(certs.clone(), signing_key);
        certified
            .keys_match()
            .map_err(|_| CertificateError::KeyMismatch)?;

        let validity = parsed.validity();
        let not_before = validity.not_before.timestamp();
        let not_after = validity.not_after.timestamp();
        let mut hostnames: Vec<String> = Vec::new();
        if let Ok(Some(san)) = parsed.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                    hostnames.push(dns.trim_end_matches('.').to_ascii_lowercase());
                }
            }
        }
        if hostnames.is_empty() {
            hostnames.extend(
                parsed
                    .subject()
                    .iter_common_name()
                    .filter_map(|cn| cn.as_str().ok())
                    .filter(|cn| cn.contains('.') && !cn.contains(' '))
                    .map(|cn| cn.trim_end_matches('.').to_ascii_lowercase()),
            );
        }
        hostnames.dedup();
        if hostnames.is_empty() {
            return Err(CertificateError::NoHostnames);
        }
        let self_signed =
            parsed.subject() == parsed.issuer() && parsed.verify_signature(None).is_ok();
        Ok(Certificate {
            hostnames,
            subject: parsed.subject().to_string(),
            issuer: parsed.issuer().to_string(),
            not_before,
            not_after,
            self_signed,
            key: Arc::new(certified),
        })
    }

    /// Checks that `now` (seconds since the epoch) is within its dates.
    pub fn check_dates(&self, now: i64) -> Result<(), CertificateError> {
        if now > self.not_after {
            return Err(CertificateError::Expired(rfc3339(self.not_after)));
        }
        if now < self.not_before {
            return Err(CertificateError::NotYetValid(rfc3339(self.not_before)));
        }
        Ok(())
    }

    /// The same certificate, served for `hostnames` only (some of those it covers).
    pub fn serving(&self, hostnames: Vec<String>) -> Certificate {
        Certificate {
            hostnames,
            ..self.clone()
        }
    }

    /// Whether its chain leads to one of `roots` for its first hostname, at `now`.
    pub fn trusted_by(&self, roots: &Arc<rustls::RootCertStore>, now: i64) -> bool {
        let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::clone(roots),
            provider(),
        )
        .build() else {
            return false;
        };
        let Some(name) = self.hostnames.first() else {
            return false;
        };
        // A wildcard is checked as one name under it.
        let name = name.replacen('*', "wharf-check", 1);
        let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else {
            return false;
        };
        let Some((leaf, intermediates)) = self.key.cert.split_first() else {
            return false;
        };
        let Ok(secs) = u64::try_from(now) else {
            return false;
        };
        verifier
            .verify_server_cert(
                leaf,
                intermediates,
                &server_name,
                &[],
                rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
            )
            .is_ok()
    }

    /// Whether it is for `host` (lowercase): by name, or a wildcard one label deep.
    pub fn covers(&self, host: &str) -> bool {
        self.hostnames.iter().any(|name| matches(name, host))
    }
}

/// `name` (maybe `*.example.com`) covers `host`.
fn matches(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == host,
    }
}

/// Hostname → certificate, exact names and wildcards apart.
#[derive(Default)]
struct CertMap {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the parent: `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl CertMap {
    fn find(&self, host: &str) -> Option<&Arc<CertifiedKey>> {
        self.exact.get(host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        })
    }
}

/// The certificates the router serves, by SNI; swapped whole.
#[derive(Default)]
pub(crate) struct Certificates {
    map: ArcSwap<CertMap>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.load();
        f.debug_struct("Certificates")
            .field("exact", &map.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &map.wildcard.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Certificates {
    /// Replaces the set. Where two certificates name one hostname, the one that expires last
    /// serves it.
    pub(crate) fn set(&self, certificates: &[Certificate]) {
        let mut by_name: HashMap<&str, &Certificate> = HashMap::new();
        for cert in certificates {
            for name in &cert.hostnames {
                let keep = by_name
                    .get(name.as_str())
                    .is_none_or(|kept| kept.not_after < cert.not_after);
                if keep {
                    by_name.insert(name, cert);
                }
            }
        }
        let mut map = CertMap::default();
        for (name, cert) in by_name {
            match name.strip_prefix("*.") {
                Some(parent) => map
                    .wildcard
                    .insert(parent.to_owned(), Arc::clone(&cert.key)),
                None => map.exact.insert(name.to_owned(), Arc::clone(&cert.key)),
            };
        }
        self.map.store(Arc::new(map));
    }

    /// Whether a certificate serves `host` (lowercase).
    pub(crate) fn covers(&self, host: &str) -> bool {
        self.map.load().find(host).is_some()
    }
}

/// Picks the certificate by the client's SNI; a client that sends none, or a name no
/// certificate covers, gets no handshake (there is nothing right to show it).
#[derive(Debug)]
struct BySni(Arc<Certificates>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.0.map.load().find(&name).cloned()
    }
}

/// The server side of the router's TLS connections.
pub(crate) fn server_config(certificates: Arc<Certificates>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni(certificates)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_one_label() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(!matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(!matches("*.example.com", ".example.com"));
        assert!(matches("example.com", "example.com"));
        assert!(!matches("example.com", "www.example.com"));
    }
}
