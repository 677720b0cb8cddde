//! wharf on Kubernetes. [`manifests`] makes one release of an app into Kubernetes objects with
//! k8s-openapi's types (what `wharf k8s manifests` prints as YAML, for kubectl, Argo CD or
//! Flux); [`names`] says what each object is called; [`cluster`] applies them to a cluster and
//! waits for them (kube-rs).

mod app;
pub mod backend;
pub mod cluster;
pub mod manifests;
pub mod names;
mod one_off;
pub mod status;

pub use backend::{KubeBackend, KubeConfig};
pub use manifests::{manifests, to_yaml, Input, ManifestError, Manifests, Object, Settings};
