//! Kubernetes names of an app's objects. App names are DNS labels already; process types may
//! hold capitals and `_` and be 63 characters long, which object names, container names and
//! label values can't: those are lowercased, `_` becomes `-`, and a name that had to change
//! (or be cut to 63 characters) ends with a hash of what it was made from, so two types never
//! share one.

/// The namespace of an app's objects.
pub fn namespace(app: &str) -> String {
    dns_label(&format!("wharf-{app}"))
}

/// The object (Deployment, Service) of one process type of the app.
pub fn object(app: &str, process_type: &str) -> String {
    dns_label(&format!("{app}-{process_type}"))
}

/// The immutable Secret of one release's config vars.
pub fn config_secret(app: &str, version: u32) -> String {
    format!("{app}-v{version}-config")
}

/// The Secret the nodes log in to the registry with.
pub fn pull_secret(app: &str) -> String {
    format!("{app}-registry")
}

/// The release phase's Job of one release.
pub fn release_job(app: &str, version: u32) -> String {
    format!("{app}-release-v{version}")
}

/// A process type as a label value and a container name.
pub fn label_value(process_type: &str) -> String {
    dns_label(process_type)
}

/// `text` as a DNS label (RFC 1123: at most 63 lowercase letters, digits and `-`, starting and
/// ending with a letter or digit); one that had to change ends with a hash of `text`.
pub fn dns_label(text: &str) -> String {
    const MAX: usize = 63;
    let valid = !text.is_empty()
        && text.len() <= MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
        && !text.ends_with('-');
    if valid {
        return text.to_owned();
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let suffix = format!("{:06x}", hash & 0x00ff_ffff);
    let cleaned: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let keep = MAX - suffix.len() - 1;
    let head: String = cleaned.chars().take(keep).collect();
    let head = head.trim_matches('-');
    if head.is_empty() {
        format!("x-{suffix}")
    } else {
        format!("{head}-{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_labels_and_distinct() {
        assert_eq!(object("shop", "web"), "shop-web");
        assert_eq!(namespace("shop"), "wharf-shop");
        let odd = object("shop", "Worker_High");
        assert!(odd.starts_with("shop-worker-high-"), "{odd}");
        assert_ne!(odd, object("shop", "worker-high"));
        assert_ne!(label_value("Worker"), label_value("worker"));
        let long = object(&"a".repeat(30), &"b".repeat(63));
        assert_eq!(long.len(), 63);
        assert_eq!(label_value("ends_"), dns_label("ends_"));
        for name in [odd, long, label_value("ends_"), label_value("x_")] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
    }
}
