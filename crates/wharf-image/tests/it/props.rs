//! Property tests: arbitrary small trees round-trip through build + extract, deterministically.

use std::collections::BTreeMap;

use proptest::prelude::*;
use wharf_image::{ImageSpec, LayerSpec, Select};

use crate::fixture::*;

fn name() -> impl Strategy<Value = String> {
    "[a-c][a-c0-9._-]{0,3}".prop_filter("not a whiteout or dot name", |n| !n.starts_with(".wh."))
}

/// Paths up to three deep mapped to (content, executable). Prefix clashes (a file `a` and a
/// file `a/b`) are removed so the tree can exist.
fn tree() -> impl Strategy<Value = BTreeMap<String, (Vec<u8>, bool)>> {
    prop::collection::btree_map(
        prop::collection::vec(name(), 1..=3).prop_map(|parts| parts.join("/")),
        (prop::collection::vec(any::<u8>(), 0..64), any::<bool>()),
        1..12,
    )
    .prop_map(|mut files| {
        let paths: Vec<String> = files.keys().cloned().collect();
        for p in &paths {
            if paths.iter().any(|q| q.starts_with(&format!("{p}/"))) {
                files.remove(p);
            }
        }
        files
    })
    .prop_filter("non-empty", |files| !files.is_empty())
}

fn spec(root: &std::path::Path) -> ImageSpec {
    ImageSpec {
        layers: vec![LayerSpec {
            root: root.to_path_buf(),
            prefix: "app".into(),
            select: Select::All,
        }],
        working_dir: "/app".into(),
        ..ImageSpec::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn trees_round_trip_and_are_deterministic(files in tree()) {
        let tmp = tempdir();
        let nodes: Vec<(&str, Node)> = files
            .iter()
            .map(|(p, (content, exec))| (p.as_str(), Node::File(content.clone(), *exec)))
            .collect();
        let a = tmp.path().join("a");
        write_tree(&a, &nodes);
        let mut reversed = nodes.clone();
        reversed.reverse();
        let b = tmp.path().join("b");
        write_tree(&b, &reversed);

        let store = store_in(tmp.path());
        let built_a = store.build_image(&spec(&a)).unwrap();
        let built_b = store.build_image(&spec(&b)).unwrap();
        prop_assert_eq!(&built_a.manifest, &built_b.manifest);

        let dest = tmp.path().join("dest");
        store.extract(&built_a.manifest, &dest).unwrap();
        prop_assert_eq!(snapshot(&dest.join("app")), snapshot(&a));
    }
}
