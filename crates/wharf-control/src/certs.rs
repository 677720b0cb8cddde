//! Which of an app's certificates serves which of its hostnames: a certificate serves each
//! hostname of its own app that it covers (by name or wildcard), unless the hostname's domain
//! names another of the app's certificates; where two cover one unnamed hostname, the one that
//! expires last serves it. The router's certificate set and the API's `domains` of an SNI
//! endpoint both come from here.

use wharf_router::Certificate;
use wharf_store::CertificateRecord;

/// One of an app's certificates: as stored, as read (`None` when it can't be, which the log
/// says), and the hostnames it serves.
#[derive(Debug, Clone)]
pub struct ServedCertificate {
    pub record: CertificateRecord,
    pub parsed: Option<Certificate>,
    pub serves: Vec<String>,
}

/// The app's certificates (`records`) over its hostnames, each with the certificate id its
/// domain names, if any.
pub fn serving(
    hostnames: &[(String, Option<String>)],
    records: Vec<CertificateRecord>,
) -> Vec<ServedCertificate> {
    let mut served: Vec<ServedCertificate> = records
        .into_iter()
        .map(|record| {
            let parsed =
                match Certificate::from_pem(&record.certificate_chain, &record.private_key) {
                    Ok(parsed) => Some(parsed),
                    Err(error) => {
                        tracing::error!(certificate = %record.name, %error, "a stored certificate can't be read; it is not served");
                        None
                    }
                };
            ServedCertificate {
                record,
                parsed,
                serves: Vec::new(),
            }
        })
        .collect();
    for (hostname, pin) in hostnames {
        let chosen = match pin {
            Some(id) => served.iter().position(|c| {
                &c.record.id == id && c.parsed.as_ref().is_some_and(|p| p.covers(hostname))
            }),
            None => served
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i, c.parsed.as_ref()?)))
                .filter(|(_, parsed)| parsed.covers(hostname))
                .max_by_key(|(_, parsed)| parsed.not_after)
                .map(|(i, _)| i),
        };
        if let Some(i) = chosen {
            served[i].serves.push(hostname.clone());
        }
    }
    served
}

/// What the router serves of them: each readable certificate for the hostnames it serves.
pub fn for_router(served: &[ServedCertificate]) -> Vec<Certificate> {
    served
        .iter()
        .filter(|c| !c.serves.is_empty())
        .filter_map(|c| Some(c.parsed.as_ref()?.serving(c.serves.clone())))
        .collect()
}
