//! wharf-core's public API used the way the server and CLI use it: several modules together.

use std::collections::BTreeSet;

use wharf_core::config::{ConfigChange, ConfigVars};
use wharf_core::formation::QuantityChange;
use wharf_core::name::{AppName, ProcessType};
use wharf_core::procfile::Procfile;
use wharf_core::range::{self, Order};
use wharf_core::release::ReleaseVersion;
use wharf_core::{dotenv, procfile};

#[test]
fn pushing_a_dotenv_file_makes_a_described_config_change() {
    let current = ConfigVars::from_string_map(
        [
            ("DATABASE_URL".to_owned(), "postgres://old".to_owned()),
            ("KEEP".to_owned(), "same".to_owned()),
            ("STALE".to_owned(), "x".to_owned()),
        ]
        .into(),
    )
    .unwrap();
    let file = "export DATABASE_URL=\"postgres://new\"\nKEEP=same # unchanged\nNEW='a b'\n";
    let change = ConfigChange {
        set: dotenv::parse(file).unwrap().into_iter().collect(),
        unset: ["STALE".parse().unwrap()].into(),
    };
    let (vars, diff) = current.apply(&change).unwrap();
    assert_eq!(
        diff.description(),
        "Set DATABASE_URL, NEW config vars, remove STALE config vars"
    );
    assert_eq!(vars.get("NEW"), Some("a b"));
    let pulled: Vec<_> = vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(dotenv::parse(&dotenv::render(&pulled)).unwrap(), pulled);
}

#[test]
fn scaling_a_procfile_process_type() {
    let procfile = procfile::parse("web: ./server\nworker: ./work\n").unwrap();
    let web: ProcessType = "web".parse().unwrap();
    assert_eq!(procfile.get(web.as_str()), Some("./server"));
    let types: BTreeSet<&str> = procfile.process_types().map(|t| t.as_str()).collect();
    assert_eq!(types, ["web", "worker"].into());

    let change: QuantityChange = serde_json::from_str("\"+2\"").unwrap();
    assert_eq!(change.apply(1), Ok(3));
    assert_eq!(Procfile::parse(&procfile.render()).unwrap(), procfile);
}

#[test]
fn paging_through_releases_newest_first() {
    let first = range::parse("version ..; max=2, order=desc", &["version"], "version").unwrap();
    assert_eq!(first.order, Order::Desc);
    let last_on_page = ReleaseVersion::new(9).unwrap();
    let header = first.next_range(&last_on_page.get().to_string());
    assert_eq!(header, "version ]9..; max=2, order=desc");
    let next = range::parse(&header, &["version"], "version").unwrap();
    let start = ReleaseVersion::parse(next.start.as_deref().unwrap()).unwrap();
    assert_eq!(start, last_on_page);
    assert!(next.start_exclusive);
}

#[test]
fn names_serialize_as_strings_inside_api_shapes() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct App {
        name: AppName,
        release: ReleaseVersion,
    }
    let json = r#"{"name":"my-app","release":4}"#;
    let app: App = serde_json::from_str(json).unwrap();
    assert_eq!(app.name.as_str(), "my-app");
    assert_eq!(serde_json::to_string(&app).unwrap(), json);
    assert!(serde_json::from_str::<App>(r#"{"name":"My-App","release":4}"#).is_err());
    assert!(serde_json::from_str::<App>(r#"{"name":"my-app","release":0}"#).is_err());
}
