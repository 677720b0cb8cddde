//! deploy/kubernetes/rbac.yaml grants exactly what wharf's Kubernetes code asks of the API:
//! every request of every recorded conversation (`conversations/`) is allowed by the
//! ClusterRole, and the ClusterRole allows nothing no conversation asks for. The manifests in
//! deploy/kubernetes/ are valid for Kubernetes 1.30 to 1.37.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// (API group, resource, verb)
type Permission = (String, String, String);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What a request needs: `PATCH` with the apply content type is `patch`, and `create` when
/// the object doesn't exist yet; a `GET` of a name is `get`, of a collection `list`.
fn needs(request: &str, content_type: Option<&str>) -> Vec<Permission> {
    let (method, target) = request.split_once(' ').unwrap();
    let path = target.split('?').next().unwrap();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/v1/… or /apis/<group>/<version>/…
    let (group, rest) = match parts[0] {
        "api" => ("", &parts[2..]),
        "apis" => (parts[1], &parts[3..]),
        other => panic!("not an API path: {other} in {request}"),
    };
    // [namespaces, <ns>,] <resource> [, <name> [, <subresource>]]
    let rest = if rest.len() > 2 && rest[0] == "namespaces" {
        &rest[2..]
    } else {
        rest
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => panic!("cannot read {request}"),
    };
    let verbs: &[&str] = match (method, named) {
        ("PATCH", true) if content_type == Some("application/apply-patch+yaml") => {
            &["create", "patch"]
        }
        ("PATCH", true) => &["patch"],
        ("GET", true) => &["get"],
        ("GET", false) => &["list"],
        ("DELETE", true) => &["delete"],
        ("POST", false) => &["create"],
        other => panic!("no verb for {other:?} in {request}"),
    };
    verbs
        .iter()
        .map(|v| (group.to_owned(), resource.clone(), (*v).to_owned()))
        .collect()
}

#[test]
fn the_cluster_role_grants_what_the_code_asks_and_nothing_more() {
    let mut used = BTreeSet::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/conversations");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let conversation: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for exchange in conversation["exchanges"].as_array().unwrap() {
            used.extend(needs(
                exchange["request"].as_str().unwrap(),
                exchange["content_type"].as_str(),
            ));
        }
    }
    // Attaching to a one-off is a WebSocket upgrade, which the recorded API doesn't replay:
    // `one_off.rs` asks for it (`Api::attach`), authorized as `get`, and as `create` since 1.31.
    for verb in ["get", "create"] {
        used.insert(("".to_owned(), "pods/attach".to_owned(), verb.to_owned()));
    }
    let role = wharf_test_support::k8s::documents(&repo().join("deploy/kubernetes/rbac.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .expect("a ClusterRole");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                for verb in rule["verbs"].as_array().unwrap() {
                    granted.insert((
                        group.as_str().unwrap().to_owned(),
                        resource.as_str().unwrap().to_owned(),
                        verb.as_str().unwrap().to_owned(),
                    ));
                }
            }
        }
    }
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(
        missing.is_empty(),
        "the code asks for, and rbac.yaml doesn't grant: {missing:?}"
    );
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "rbac.yaml grants, and no code asks for: {unused:?}"
    );
}

#[test]
fn the_deploy_manifests_are_valid_for_kubernetes_1_30_to_1_37() {
    let Some(validate) = wharf_test_support::k8s::kubernetes_validate() else {
        return;
    };
    let files: Vec<(String, PathBuf)> = std::fs::read_dir(repo().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        // Kubernetes objects, not kustomize's own file.
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    assert!(!files.is_empty());
    wharf_test_support::k8s::assert_valid(&validate, &files);
}
