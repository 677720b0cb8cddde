//! Automated Certificate Management (Heroku's ACM): for every custom domain of an app with ACM
//! on, a certificate from an ACME directory (RFC 8555, through instant-acme), proven with the
//! HTTP-01 challenge that the router answers on its plain listener. A domain's certificate is
//! ordered when it has none, and renewed 30 days before it expires; a failed attempt is tried
//! again after a backoff that doubles from a minute up to a day (`wharf certs:auto:refresh`
//! tries at once). Each domain shows where it stands: `pending`, `cert issued` or `failing`
//! with the last error. One account per directory, its key stored sealed.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use wharf_router::Certificate;
use wharf_store::{DomainRecord, SOURCE_ACME};

use crate::ControlPlane;

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory, for trying things out (its certificates aren't trusted).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_ISSUED: &str = "cert issued";
pub const STATUS_FAILING: &str = "failing";

/// A certificate is renewed this long before it expires.
const RENEW_BEFORE: i64 = 30 * 24 * 3600;
/// The wait after the first failure, doubled after each further one, up to [`RETRY_MAX`].
const RETRY_FIRST: i64 = 60;
const RETRY_MAX: i64 = 24 * 3600;
/// How long an order may take to become ready, and its certificate to be issued.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

/// Where certificates come from.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (`WHARF_ACME_DIRECTORY`).
    pub directory: String,
    /// A PEM certificate authority the directory's own HTTPS is checked against, instead of
    /// the system's (a private ACME server, Pebble).
    pub directory_ca: Option<PathBuf>,
    /// The account's contact, e.g. `mailto:ops@example.com` (`WHARF_ACME_EMAIL`).
    pub contact: Option<String>,
    /// How often every domain is looked at (besides after each change).
    pub look_every: Duration,
}

/// The ACME side of the control plane.
pub(crate) struct Acme {
    pub(crate) config: AcmeConfig,
    pub(crate) wake: Notify,
    account: Mutex<Option<Account>>,
    /// Held while an issued certificate is stored, and while ACM is turned off: a certificate
    /// ordered before ACM went off is never stored after.
    storing: Mutex<()>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Acme {
    pub(crate) fn new(config: AcmeConfig) -> Acme {
        Acme {
            config,
            wake: Notify::new(),
            account: Mutex::new(None),
            storing: Mutex::new(()),
        }
    }
}

/// The name of the ACME certificate of `hostname` on `app`.
pub fn certificate_name(app: &str, hostname: &str) -> String {
    format!("{app}-acm-{}", hostname.replace(['.', '*'], "-"))
}

/// The wait before attempt number `failures + 1`.
fn backoff(failures: i64) -> i64 {
    let doublings = u32::try_from(failures.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    RETRY_FIRST
        .saturating_mul(1_i64 << doublings)
        .min(RETRY_MAX)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl ControlPlane {
    /// Looks after every ACM domain until `stop`: at start, after each change, and every
    /// `look_every`. Returns at once when ACME isn't configured.
    pub async fn manage_certificates(&self, stop: CancellationToken) {
        let Some(acme) = self.acme.clone() else {
            return;
        };
        loop {
            self.acme_pass(&acme).await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = acme.wake.notified() => {}
                () = tokio::time::sleep(acme.config.look_every) => {}
            }
        }
    }

    /// Whether ACME certificates can be had here (the router serves HTTPS and a directory is
    /// set).
    pub fn acme_available(&self) -> bool {
        self.acme.is_some()
    }

    /// Removes the app's ACME certificates (ACM was turned off in the store), waiting for a
    /// certificate being stored to be stored first.
    pub async fn remove_acme_certificates(
        &self,
        app_id: &str,
    ) -> Result<(), wharf_store::StoreError> {
        let _storing = match &self.acme {
            Some(acme) => Some(acme.storing.lock().await),
            None => None,
        };
        for cert in self.store.certificates(app_id).await? {
            if cert.source == SOURCE_ACME {
                self.store.remove_certificate(app_id, &cert.id).await?;
            }
        }
        Ok(())
    }

    /// Wakes the certificate manager to look at every domain now.
    pub(crate) fn wake_acme(&self) {
        if let Some(acme) = &self.acme {
            acme.wake.notify_one();
        }
    }

    /// One look at every ACM domain: orders what is missing or due, in turn.
    async fn acme_pass(&self, acme: &Acme) {
        let domains = match self.store.acm_domains().await {
            Ok(domains) => domains,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the ACM domains");
                return;
            }
        };
        for (app_name, domain) in domains {
            if let Err(e) = self.look_after(acme, &app_name, &domain).await {
                tracing::error!(app = %app_name, hostname = %domain.hostname, error = %e, "ACM bookkeeping failed");
            }
        }
    }

    async fn look_after(
        &self,
        acme: &Acme,
        app_name: &str,
        domain: &DomainRecord,
    ) -> Result<(), wharf_store::StoreError> {
        let now = Utc::now();
        let hostname = domain.hostname.as_str();
        let name = certificate_name(app_name, hostname);
        let current = self.store.certificate(&domain.app_id, &name).await.ok();
        let remaining = current
            .as_ref()
            .and_then(|c| Certificate::from_pem(&c.certificate_chain, &c.private_key).ok())
            .filter(|c| c.covers(hostname))
            .map(|c| c.not_after - now.timestamp());
        if remaining.is_some_and(|left| left > RENEW_BEFORE) {
            if domain.acm_status.as_deref() != Some(STATUS_ISSUED) {
                self.store
                    .set_acm_status(&domain.id, Some(STATUS_ISSUED), None, 0, None)
                    .await?;
            }
            return Ok(());
        }
        let waiting = domain
            .acm_next_attempt
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|next| next > now);
        if waiting {
            return Ok(());
        }
        // A certificate still in use while it is renewed keeps the domain `cert issued`.
        let status = if remaining.is_some_and(|left| left > 0) {
            STATUS_ISSUED
        } else {
            STATUS_PENDING
        };
        self.store
            .set_acm_status(&domain.id, Some(status), None, domain.acm_failures, None)
            .await?;
        tracing::info!(app = %app_name, hostname, "ordering a certificate (ACME)");
        match self.order(acme, hostname).await {
            Ok((chain, key)) => {
                let _storing = acme.storing.lock().await;
                if !self.store.app(&domain.app_id).await?.acm {
                    return Ok(());
                }
                let cert = match current {
                    Some(c) => {
                        self.store
                            .replace_certificate(&domain.app_id, &c.id, SOURCE_ACME, &chain, &key)
                            .await?
                    }
                    None => {
                        self.store
                            .add_certificate(&domain.app_id, &name, SOURCE_ACME, &chain, &key)
                            .await?
                    }
                };
                self.store
                    .set_domain_certificate(&domain.app_id, &domain.id, Some(&cert.id))
                    .await?;
                self.store
                    .set_acm_status(&domain.id, Some(STATUS_ISSUED), None, 0, None)
                    .await?;
                tracing::info!(app = %app_name, hostname, "certificate issued (ACME)");
                self.load_routes().await;
            }
            Err(reason) => {
                let failures = domain.acm_failures + 1;
                let next = now + chrono::Duration::seconds(backoff(failures));
                tracing::warn!(app = %app_name, hostname, %reason, failures, "ACME order failed; trying again later");
                self.store
                    .set_acm_status(
                        &domain.id,
                        Some(STATUS_FAILING),
                        Some(&reason),
                        failures,
                        Some(&rfc3339(next)),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// The account for the directory: the stored one, else a new one, stored.
    async fn account(&self, acme: &Acme) -> Result<Account, String> {
        let mut held = acme.account.lock().await;
        if let Some(account) = held.as_ref() {
            return Ok(account.clone());
        }
        let builder = || match &acme.config.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        };
        let directory = &acme.config.directory;
        let stored = self
            .store
            .acme_account(directory)
            .await
            .map_err(|e| e.to_string())?;
        let account = match stored {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_str(&json)
                    .map_err(|e| format!("the stored ACME account can't be read: {e}"))?;
                builder()
                    .map_err(|e| e.to_string())?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| format!("the ACME directory {directory}: {e}"))?
            }
            None => {
                let contact: Vec<&str> = acme.config.contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()
                    .map_err(|e| e.to_string())?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| format!("cannot make an account at {directory}: {e}"))?;
                let json = serde_json::to_string(&credentials).map_err(|e| e.to_string())?;
                self.store
                    .save_acme_account(directory, &json)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(directory, "made an ACME account");
                account
            }
        };
        *held = Some(account.clone());
        Ok(account)
    }

    /// Orders a certificate for `hostname` with HTTP-01: (chain, key) as PEM, or why not.
    async fn order(&self, acme: &Acme, hostname: &str) -> Result<(String, String), String> {
        let account = self.account(acme).await?;
        let identifiers = [Identifier::Dns(hostname.to_owned())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("the ACME server refused the order: {e}"))?;
        let mut tokens = Vec::new();
        let answered = async {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz = authz.map_err(|e| e.to_string())?;
                if authz.status != AuthorizationStatus::Pending {
                    continue;
                }
                let mut challenge = authz
                    .challenge(ChallengeType::Http01)
                    .ok_or("the ACME server offers no HTTP-01 challenge")?;
                self.router
                    .set_acme_challenge(&challenge.token, challenge.key_authorization().as_str());
                tokens.push(challenge.token.clone());
                challenge.set_ready().await.map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }
        .await;
        let ready = match answered {
            Ok(()) => order
                .poll_ready(&RetryPolicy::new().timeout(ORDER_TIMEOUT))
                .await
                .map_err(|e| format!("the HTTP-01 challenge failed: {e}")),
            Err(e) => Err(e),
        };
        for token in &tokens {
            self.router.remove_acme_challenge(token);
        }
        match ready? {
            OrderStatus::Ready => {}
            status => return Err(why_invalid(&mut order, status).await),
        }
        let key = order.finalize().await.map_err(|e| e.to_string())?;
        let chain = order
            .poll_certificate(&RetryPolicy::new().timeout(ORDER_TIMEOUT))
            .await
            .map_err(|e| format!("the certificate wasn't issued: {e}"))?;
        Ok((chain, key))
    }
}

/// Why an order didn't become ready: the challenge's error, as the ACME server put it.
async fn why_invalid(order: &mut instant_acme::Order, status: OrderStatus) -> String {
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for challenge in &authz.challenges {
            if let Some(problem) = &challenge.error {
                return match &problem.detail {
                    Some(detail) => format!("the HTTP-01 challenge failed: {detail}"),
                    None => format!("the HTTP-01 challenge failed: {problem}"),
                };
            }
        }
    }
    format!("the order ended {status:?} without a reason")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(5), 960);
        assert_eq!(backoff(30), RETRY_MAX);
    }
}
