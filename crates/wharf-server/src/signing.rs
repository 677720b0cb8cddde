//! Signed, expiring URLs for the resources a client fetches without a token: source archive
//! uploads and downloads, and build output streams. A signature is an HMAC-SHA256 over the
//! method, the path and the expiry time, with a key kept in the data directory (mode 0600), so a
//! URL can't be reused for another resource, another method, or after it expires.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("this URL is not signed: ask the API for a fresh one")]
    Missing,
    #[error("this URL's signature is not valid: ask the API for a fresh one")]
    Invalid,
    #[error("this URL expired: ask the API for a fresh one")]
    Expired,
}

/// Signs and checks URLs.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner { key: <redacted> }")
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl UrlSigner {
    pub fn new(key: [u8; 32]) -> UrlSigner {
        UrlSigner { key }
    }

    /// The key in `path`, made (randomly, mode 0600) if the file doesn't exist.
    pub fn load_or_create(path: &Path) -> std::io::Result<UrlSigner> {
        let key = load_or_create_key(path, "delete it to make a new one")?;
        Ok(UrlSigner { key })
    }

    fn mac(&self, method: &str, path: &str, expires: u64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(method.as_bytes());
        mac.update(b"\n");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The query string (`expires=…&signature=…`) that lets `method` on `path` through for `ttl`.
    pub fn sign(&self, method: &str, path: &str, ttl: Duration) -> String {
        let expires = unix_now() + ttl.as_secs();
        let signature = hex::encode(self.mac(method, path, expires).finalize().into_bytes());
        format!("expires={expires}&signature={signature}")
    }

    /// Checks the `expires` and `signature` query values for `method` on `path`.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        expires: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(), SignatureError> {
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return Err(SignatureError::Missing);
        };
        let expires: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(method, path, expires)
            .verify_slice(&signature)
            .map_err(|_| SignatureError::Invalid)?;
        if unix_now() > expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }
}

/// What a pull token starts with.
const PULL_TOKEN_PREFIX: &str = "wharf-pull.";
/// What a pull token's MAC is over in place of a URL's method: no HTTP method has a space.
const PULL_PURPOSE: &str = "registry pull";

/// What a valid pull token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullGrant {
    /// The app whose images it pulls; `None`: none (a login check).
    pub app_id: Option<String>,
    /// Until when (Unix seconds).
    pub expires: u64,
}

/// Whether `token` is shaped like a pull token (rather than an API token).
pub fn is_pull_token(token: &str) -> bool {
    token.starts_with(PULL_TOKEN_PREFIX)
}

impl UrlSigner {
    /// A registry pull token: `app_id`'s images (or nothing), for `ttl`. Signed with the URL
    /// key over a purpose no URL's method can be, so neither can stand for the other.
    pub fn pull_token(&self, app_id: Option<&str>, ttl: Duration) -> String {
        let subject = app_id.unwrap_or("-");
        let expires = unix_now() + ttl.as_secs();
        let signature = hex::encode(
            self.mac(PULL_PURPOSE, subject, expires)
                .finalize()
                .into_bytes(),
        );
        format!("{PULL_TOKEN_PREFIX}{subject}.{expires}.{signature}")
    }

    /// What a pull token grants, if it is this server's and still valid.
    pub fn check_pull_token(&self, token: &str) -> Result<PullGrant, SignatureError> {
        let rest = token
            .strip_prefix(PULL_TOKEN_PREFIX)
            .ok_or(SignatureError::Missing)?;
        let mut parts = rest.split('.');
        let (Some(subject), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignatureError::Invalid);
        };
        let expires_at: u64 = expires.parse().map_err(|_| SignatureError::Invalid)?;
        let signature = hex::decode(signature).map_err(|_| SignatureError::Invalid)?;
        self.mac(PULL_PURPOSE, subject, expires_at)
            .verify_slice(&signature)
            .map_err(|_| SignatureError::Invalid)?;
        if unix_now() > expires_at {
            return Err(SignatureError::Expired);
        }
        Ok(PullGrant {
            app_id: (subject != "-").then(|| subject.to_owned()),
            expires: expires_at,
        })
    }
}

/// A 32-byte key kept in `path` as 64 hex digits (readable by its owner only), made on first
/// use. `if_invalid` tells the operator what to do when the file holds something else.
pub(crate) fn load_or_create_key(path: &Path, if_invalid: &str) -> std::io::Result<[u8; 32]> {
    match std::fs::read(path) {
        Ok(bytes) => hex::decode(String::from_utf8_lossy(&bytes).trim())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} does not hold a 64-hex-digit key: {if_invalid}",
                        path.display()
                    ),
                )
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            crate::write_private(path, &format!("{}\n", hex::encode(key)))?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(query: &str) -> (String, String) {
        let mut expires = String::new();
        let mut signature = String::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            match k {
                "expires" => expires = v.to_owned(),
                _ => signature = v.to_owned(),
            }
        }
        (expires, signature)
    }

    #[test]
    fn a_signature_fits_one_method_one_path_and_one_expiry() {
        let signer = UrlSigner::new([7; 32]);
        let (expires, signature) =
            parts(&signer.sign("GET", "/builds/1/output", Duration::from_secs(60)));
        assert_eq!(
            signer.verify("GET", "/builds/1/output", Some(&expires), Some(&signature)),
            Ok(())
        );
        assert_eq!(
            signer.verify("PUT", "/builds/1/output", Some(&expires), Some(&signature)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            signer.verify("GET", "/builds/2/output", Some(&expires), Some(&signature)),
            Err(SignatureError::Invalid)
        );
        let later = (expires.parse::<u64>().unwrap() + 1000).to_string();
        assert_eq!(
            signer.verify("GET", "/builds/1/output", Some(&later), Some(&signature)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            signer.verify("GET", "/builds/1/output", None, Some(&signature)),
            Err(SignatureError::Missing)
        );
        let other = UrlSigner::new([8; 32]);
        assert_eq!(
            other.verify("GET", "/builds/1/output", Some(&expires), Some(&signature)),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn a_pull_token_grants_its_own_app_until_it_expires() {
        let signer = UrlSigner::new([3; 32]);
        let token = signer.pull_token(Some("app-1"), Duration::from_secs(60));
        assert!(is_pull_token(&token));
        let grant = signer.check_pull_token(&token).unwrap();
        assert_eq!(grant.app_id.as_deref(), Some("app-1"));
        let none = signer.pull_token(None, Duration::from_secs(60));
        assert_eq!(signer.check_pull_token(&none).unwrap().app_id, None);
        // Another app's name in a signed token, another key, a URL signature: refused.
        let forged = token.replacen("app-1", "app-2", 1);
        assert_eq!(
            signer.check_pull_token(&forged),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            UrlSigner::new([4; 32]).check_pull_token(&token),
            Err(SignatureError::Invalid)
        );
        let (expires, signature) = parts(&signer.sign("GET", "app-1", Duration::from_secs(60)));
        assert_eq!(
            signer.check_pull_token(&format!("wharf-pull.app-1.{expires}.{signature}")),
            Err(SignatureError::Invalid),
            "a URL's signature is no pull token"
        );
        let expired = format!(
            "wharf-pull.app-1.{}.{}",
            unix_now() - 5,
            hex::encode(
                signer
                    .mac(PULL_PURPOSE, "app-1", unix_now() - 5)
                    .finalize()
                    .into_bytes()
            )
        );
        assert_eq!(
            signer.check_pull_token(&expired),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn expired_signatures_are_refused() {
        let signer = UrlSigner::new([1; 32]);
        let expires = (unix_now() - 10).to_string();
        let signature = hex::encode(
            signer
                .mac("GET", "/x", expires.parse().unwrap())
                .finalize()
                .into_bytes(),
        );
        assert_eq!(
            signer.verify("GET", "/x", Some(&expires), Some(&signature)),
            Err(SignatureError::Expired)
        );
    }
}
