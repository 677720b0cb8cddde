//! HTTPS for the API (and so for `git push`): on its first start wharf makes a certificate
//! authority of its own, `<data dir>/tls/ca.pem` (its key beside it, readable by wharf's user
//! only), and at every start a server certificate signed by it for the names wharf answers to.
//! Users and tools trust `ca.pem` (`wharf tls ca` prints its path) instead of a public CA, which a
//! server on a laptop or a private network can't get.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The CA certificate's file name in the TLS directory.
pub const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca-key.pem";

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS can't be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot use {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot use the certificate: {0}")]
    Rustls(#[from] rustls::Error),
}

/// wharf's CA and the server certificate of this start.
#[derive(Clone)]
pub struct Tls {
    /// The CA certificate clients trust.
    pub ca_path: PathBuf,
    /// The server side of every TLS connection wharf accepts.
    pub config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// Where the CA certificate of the server with data directory `data_dir` is.
pub fn ca_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls").join(CA_FILE)
}

/// The CA's parameters. Its certificate is made once and kept; at later starts these same
/// parameters with the kept key make an identical issuer (name and key identifier) to sign with.
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "wharf local CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "wharf");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    Ok(params)
}

/// Loads wharf's CA from `<data_dir>/tls` (making it on first use) and signs a server
/// certificate for `hostnames` (DNS names or IP addresses).
pub fn load_or_create(data_dir: &Path, hostnames: &[String]) -> Result<Tls, TlsError> {
    let dir = data_dir.join("tls");
    let file_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::File { path, source }
    };
    // Passable, so other users can read the CA certificate; the keys inside are private.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)))
        .map_err(file_error(&dir))?;
    let ca_path = dir.join(CA_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let ca_key = if ca_path.is_file() && key_path.is_file() {
        let pem = std::fs::read_to_string(&key_path).map_err(file_error(&key_path))?;
        KeyPair::from_pem(&pem)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        // The key first: a CA certificate on disk always has its key.
        crate::write_atomically(&key_path, &key.serialize_pem(), 0o600)
            .map_err(file_error(&key_path))?;
        crate::write_atomically(&ca_path, &cert.pem(), 0o644).map_err(file_error(&ca_path))?;
        tracing::info!(path = %ca_path.display(), "made wharf's certificate authority");
        key
    };
    let ca = ca_params()?.self_signed(&ca_key)?;

    let mut params = CertificateParams::new(hostnames.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, "wharf");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // A year from yesterday: clients refuse server certificates valid for much longer.
    let (from, until) = {
        use chrono::Datelike;
        let today = chrono::Utc::now().date_naive();
        let from = today - chrono::Days::new(1);
        let until = today + chrono::Days::new(365);
        let ymd =
            |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
        (ymd(from), ymd(until))
    };
    params.not_before = from;
    params.not_after = until;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_path,
        config: Arc::new(config),
    })
}

/// Serves `app` over TLS on `listener` (HTTP/1.1 and HTTP/2 by ALPN) until `shutdown` is
/// cancelled; connections then finish their requests in flight before this returns.
pub async fn serve(
    listener: TcpListener,
    tls: Tls,
    app: axum::Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "TLS listener: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "TLS connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
