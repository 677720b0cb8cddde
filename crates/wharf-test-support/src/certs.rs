//! A certificate authority of a test's own, made with rcgen: certificates for chosen hostnames
//! and dates, signed by it, as PEM; clients trust [`TestCa::pem`].

use chrono::Datelike;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA that signs test certificates.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, then the CA's (a full chain).
    pub chain: String,
    pub key: String,
}

/// Sets the dates `from` and `until` days from today (negative: in the past).
fn set_dates(params: &mut CertificateParams, from: i64, until: i64) {
    let ymd = |offset: i64| {
        let date = chrono::Utc::now().date_naive() + chrono::Duration::days(offset);
        let month = u8::try_from(date.month()).expect("a month");
        let day = u8::try_from(date.day()).expect("a day");
        rcgen::date_time_ymd(date.year(), month, day)
    };
    params.not_before = ymd(from);
    params.not_after = ymd(until);
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("a key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_dates(&mut params, -30, 3650);
        let cert = params.self_signed(&key).expect("a CA certificate");
        TestCa { cert, key }
    }

    /// The CA's certificate, PEM: what clients trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for `names`, valid from a day ago for a year.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_for(names, -1, 365)
    }

    /// A certificate for `names` valid from `from` days from today until `until` days from
    /// today (negative: in the past).
    pub fn issue_for(&self, names: &[&str], from: i64, until: i64) -> Issued {
        let key = KeyPair::generate().expect("a key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        set_dates(&mut params, from, until);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a certificate");
        Issued {
            chain: format!("{}{}", cert.pem(), self.cert.pem()),
            key: key.serialize_pem(),
        }
    }
}
