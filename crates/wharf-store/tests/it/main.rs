//! Store tests against real databases: a SQLite file and a PostgreSQL server.

use std::collections::BTreeSet;

use wharf_core::config::{ConfigChange, ConfigKey};
use wharf_core::name::AppName;
use wharf_core::range::Range;
use wharf_store::testing::{Backend, TestDatabase};
use wharf_store::{ReleaseRef, Store, StoreError};

use wharf_test_support::on_both_databases;

on_both_databases!(
    reopening_keeps_everything,
    two_stores_on_one_database_never_share_a_version,
    tokens_are_stored_as_hashes_only,
    versions_restart_for_a_new_app_of_the_same_name,
    builds_move_forward_and_a_success_makes_its_release,
    domains_belong_to_one_app_and_feed_the_route_table,
    a_failed_release_is_no_longer_current,
);

fn set(pairs: &[(&str, &str)]) -> ConfigChange {
    ConfigChange {
        set: pairs
            .iter()
            .map(|(k, v)| (ConfigKey::parse(k).unwrap(), (*v).to_owned()))
            .collect(),
        unset: BTreeSet::new(),
    }
}

async fn reopening_keeps_everything(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let app = store
        .create_app(&AppName::parse("keep").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    store
        .update_config(&app.id, &owner.id, &set(&[("A", "1")]))
        .await
        .unwrap();
    store.close().await;

    // Migrations run again on connect and must leave existing data alone.
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.admin_account().await.unwrap(), owner);
    let app = store.app("keep").await.unwrap();
    assert_eq!(
        store.config_vars(&app.id).await.unwrap().get("A"),
        Some("1")
    );
    let current = store.current_release(&app.id).await.unwrap().unwrap();
    assert_eq!(current.version.get(), 2);
    store.close().await;
}

/// Two wharf processes on one database (two pools here) making config changes at once: every
/// change lands, each gets its own version, and versions have no gaps.
async fn two_stores_on_one_database_never_share_a_version(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let first = Store::connect(&db.url).await.unwrap();
    let second = Store::connect(&db.url).await.unwrap();
    let owner = first.admin_account().await.unwrap();
    let app = first
        .create_app(&AppName::parse("race").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (app_id, owner_id) = (app.id.clone(), owner.id.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("K{i}");
            store
                .update_config(&app_id, &owner_id, &set(&[(&key, "v")]))
                .await
                .unwrap()
                .release
                .unwrap()
                .version
                .get()
        }));
    }
    let mut versions = BTreeSet::new();
    for task in tasks {
        assert!(
            versions.insert(task.await.unwrap()),
            "a version was handed out twice"
        );
    }
    assert_eq!(versions, (2..=21).collect());
    assert_eq!(
        first.config_vars(&app.id).await.unwrap().len(),
        20,
        "no change was lost"
    );
    let page = first
        .list_releases(&app.id, &Range::default_for("version"))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 21);
    assert_eq!(page.items.iter().filter(|r| r.current).count(), 1);
    first.close().await;
    second.close().await;
}

async fn tokens_are_stored_as_hashes_only(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let token = store.create_token(&owner.id, "ci").await.unwrap();
    assert!(token.secret.starts_with("wharf_") && token.secret.len() > 40);
    let (found, account) = store.authenticate(&token.secret).await.unwrap().unwrap();
    assert_eq!(found.id, token.record.id);
    assert_eq!(account.email, "admin@wharf.local");
    assert!(store.authenticate("wharf_nope").await.unwrap().is_none());

    let listed = store.list_tokens(&owner.id).await.unwrap();
    assert_eq!(listed, vec![token.record.clone()]);
    store.revoke_token(&token.record.id).await.unwrap();
    assert!(store.authenticate(&token.secret).await.unwrap().is_none());
    assert!(matches!(
        store.revoke_token(&token.record.id).await,
        Err(StoreError::Conflict(_))
    ));
    store.close().await;

    if backend == Backend::Sqlite {
        // Nothing in the database file (or its WAL) holds the secret.
        for entry in std::fs::read_dir(db.dir.path()).unwrap() {
            // SQLite may still be removing its -wal/-shm files as the pool closes.
            let bytes = match std::fs::read(entry.unwrap().path()) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot read the database files: {e}"),
            };
            let needle = token.secret.as_bytes();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "the token secret is stored in plain text"
            );
        }
    }
}

async fn versions_restart_for_a_new_app_of_the_same_name(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let name = AppName::parse("again").unwrap();
    let app = store.create_app(&name, &owner.id, "wharf-1").await.unwrap();
    store
        .update_config(&app.id, &owner.id, &set(&[("A", "1")]))
        .await
        .unwrap();
    store.delete_app(&app.id).await.unwrap();
    assert!(matches!(
        store.app("again").await,
        Err(StoreError::NotFound { .. })
    ));

    let reborn = store.create_app(&name, &owner.id, "wharf-1").await.unwrap();
    assert_ne!(reborn.id, app.id);
    let v1 = store
        .release(&reborn.id, &ReleaseRef::parse("v1"))
        .await
        .unwrap();
    assert_eq!(v1.description, "Initial release");
    assert!(store.config_vars(&reborn.id).await.unwrap().is_empty());
    let missing = store.release(&reborn.id, &ReleaseRef::parse("2")).await;
    assert!(matches!(
        missing,
        Err(StoreError::NotFound {
            kind: "release",
            ..
        })
    ));
    store.close().await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let db = TestDatabase::new(Backend::Sqlite).await;
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(
        store.sqlite_journal_mode().await.unwrap().as_deref(),
        Some("wal")
    );
    store.close().await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_with_the_password_hidden() {
    let err = Store::connect("mysql://root:hunter2@db/wharf")
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("sqlite://") && message.contains("postgres://"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

async fn builds_move_forward_and_a_success_makes_its_release(backend: Backend) {
    use wharf_core::build::BuildStatus;
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let app = store
        .create_app(&AppName::parse("builder").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    store
        .update_config(&app.id, &owner.id, &set(&[("A", "1")]))
        .await
        .unwrap();
    let source = store.create_source().await.unwrap();
    store
        .mark_source_uploaded(&source.id, &"ab".repeat(32), 10)
        .await
        .unwrap();
    assert!(matches!(
        store
            .mark_source_uploaded(&source.id, &"ab".repeat(32), 10)
            .await,
        Err(StoreError::Conflict(_))
    ));

    let build = store
        .create_build(&app.id, &source.id, Some("v1.0"), &owner.id)
        .await
        .unwrap();
    assert_eq!(build.status, BuildStatus::Pending);
    // A build can't succeed before it runs, nor run twice.
    let success = wharf_store::BuildSuccess {
        runtime: Some("python 3.13.5".to_owned()),
        provider: "procfile".into(),
        image_digest: format!("sha256:{}", "c".repeat(64)),
        process_types: [("web".to_owned(), "true".to_owned())].into(),
        release_description: "Deploy cccccccccccc".into(),
        // app.json's settings: taken on this first deploy only.
        first_deploy: wharf_store::FirstDeploy {
            config: [(
                wharf_core::config::ConfigKey::parse("GREETING").unwrap(),
                "hello".to_owned(),
            )]
            .into(),
            formation: [(
                "web".to_owned(),
                (
                    Some(2),
                    Some(wharf_core::formation::DynoSize::parse("standard-2x").unwrap()),
                ),
            )]
            .into(),
        },
    };
    assert!(matches!(
        store.succeed_build(&build.id, &success).await,
        Err(StoreError::Conflict(_))
    ));
    store.start_build(&build.id).await.unwrap();
    assert!(matches!(
        store.start_build(&build.id).await,
        Err(StoreError::Conflict(_))
    ));
    let wharf_store::Succeeded {
        build: done,
        release,
        first_deploy,
    } = store.succeed_build(&build.id, &success).await.unwrap();
    assert!(first_deploy);
    assert_eq!(
        store.config_vars(&app.id).await.unwrap().get("GREETING"),
        Some("hello")
    );
    assert_eq!(release.config.get("GREETING"), Some("hello"));
    let web = store
        .formation(&app.id)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.process_type == "web")
        .unwrap();
    assert_eq!((web.quantity, web.size.name()), (2, "standard-2x"));
    assert_eq!(done.status, BuildStatus::Succeeded);
    assert_eq!(done.release_id.as_deref(), Some(release.id.as_str()));
    assert_eq!(release.version.get(), 3);
    assert_eq!(
        release.image_digest.as_deref(),
        Some(success.image_digest.as_str())
    );
    assert_eq!(
        release.config.get("A"),
        Some("1"),
        "a deploy keeps the current config"
    );
    assert!(release.current);
    // The next config change keeps the image.
    let changed = store
        .update_config(&app.id, &owner.id, &set(&[("B", "2")]))
        .await
        .unwrap();
    assert_eq!(changed.release.unwrap().image_digest, release.image_digest);

    // Builds left unfinished by a stop are failed at the next start.
    let queued = store
        .create_build(&app.id, &source.id, None, &owner.id)
        .await
        .unwrap();
    let running = store
        .create_build(&app.id, &source.id, None, &owner.id)
        .await
        .unwrap();
    store.start_build(&running.id).await.unwrap();
    assert_eq!(
        store.fail_unfinished_builds("interrupted").await.unwrap(),
        2
    );
    for id in [&queued.id, &running.id] {
        let build = store.build(id).await.unwrap();
        assert_eq!(build.status, BuildStatus::Failed);
        assert_eq!(build.error.as_deref(), Some("interrupted"));
    }
    assert_eq!(
        store.build(&build.id).await.unwrap().status,
        BuildStatus::Succeeded
    );
    let page = store
        .list_builds(&app.id, &Range::default_for("created_at"))
        .await
        .unwrap();
    let order: Vec<_> = page.items.iter().map(|b| b.id.clone()).collect();
    assert_eq!(
        order,
        vec![build.id.clone(), queued.id.clone(), running.id.clone()],
        "oldest first"
    );
    store.close().await;
}

async fn domains_belong_to_one_app_and_feed_the_route_table(backend: Backend) {
    use wharf_core::domain::Hostname;
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let shop = store
        .create_app(&AppName::parse("shop").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    let blog = store
        .create_app(&AppName::parse("blog").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    let www = Hostname::parse("www.shop.example").unwrap();
    let added = store.add_domain(&shop.id, &www).await.unwrap();
    store
        .add_domain(&shop.id, &Hostname::parse("shop.example").unwrap())
        .await
        .unwrap();
    // The same hostname for another app, or again for this one: a conflict naming it.
    for app in [&blog.id, &shop.id] {
        match store.add_domain(app, &www).await {
            Err(StoreError::Conflict(m)) => assert!(m.contains("www.shop.example"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    // Found by id or by hostname (any case); another app's domain is not found.
    assert_eq!(store.domain(&shop.id, &added.id).await.unwrap(), added);
    assert_eq!(
        store.domain(&shop.id, "WWW.shop.example").await.unwrap(),
        added
    );
    assert!(matches!(
        store.domain(&blog.id, &added.id).await,
        Err(StoreError::NotFound { .. })
    ));
    let table = store.route_table().await.unwrap();
    let names: Vec<(&str, Vec<String>)> = table
        .iter()
        .map(|r| (r.app_name.as_str(), r.hostnames.clone()))
        .collect();
    assert_eq!(
        names,
        [
            ("blog", vec![]),
            (
                "shop",
                vec!["shop.example".to_owned(), "www.shop.example".to_owned()]
            )
        ]
    );
    store
        .remove_domain(&shop.id, "www.shop.example")
        .await
        .unwrap();
    store.add_domain(&blog.id, &www).await.unwrap();
    // Destroying an app frees its hostnames.
    store.delete_app(&blog.id).await.unwrap();
    store.add_domain(&shop.id, &www).await.unwrap();
    assert_eq!(store.domains(&shop.id).await.unwrap().len(), 2);
    store.close().await;
}

async fn a_failed_release_is_no_longer_current(backend: Backend) {
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    let owner = store.admin_account().await.unwrap();
    let app = store
        .create_app(&AppName::parse("flaky").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    store
        .update_config(&app.id, &owner.id, &set(&[("A", "1")]))
        .await
        .unwrap();
    assert!(store
        .fail_release(&app.id, 2, "web.1 exited (status 1) before it was up")
        .await
        .unwrap());
    // Only a succeeded release can fail, once.
    assert!(!store.fail_release(&app.id, 2, "again").await.unwrap());
    let current = store.current_release(&app.id).await.unwrap().unwrap();
    assert_eq!(current.version.get(), 1);
    let failed = store
        .release(&app.id, &ReleaseRef::parse("2"))
        .await
        .unwrap();
    assert_eq!(failed.status.to_string(), "failed");
    assert!(!failed.current);
    assert_eq!(
        failed.status_reason.as_deref(),
        Some("web.1 exited (status 1) before it was up")
    );
    // The next change gets the next version; numbers are never reused.
    store
        .update_config(&app.id, &owner.id, &set(&[("B", "2")]))
        .await
        .unwrap();
    assert_eq!(
        store
            .current_release(&app.id)
            .await
            .unwrap()
            .unwrap()
            .version
            .get(),
        3
    );
    store.close().await;
}

on_both_databases!(config_values_are_encrypted_at_rest);

/// Every stored copy of the config values, read with SQL around the store.
async fn raw_config(url: &str) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut stored = Vec::new();
    for query in [
        "SELECT value AS v FROM config_vars",
        "SELECT config AS v FROM releases",
    ] {
        for row in sqlx::query(query).fetch_all(&pool).await.unwrap() {
            stored.push(row.try_get::<String, _>("v").unwrap());
        }
    }
    pool.close().await;
    stored
}

async fn config_values_are_encrypted_at_rest(backend: Backend) {
    const SECRET: &str = "postgres://app:hunter2-very-secret@db/prod";
    let db = TestDatabase::new(backend).await;
    // Written by a store without a key (as an older wharf did): plain text.
    let plain = Store::connect(&db.url).await.unwrap();
    let owner = plain.admin_account().await.unwrap();
    let app = plain
        .create_app(&AppName::parse("sealed").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    plain
        .update_config(&app.id, &owner.id, &set(&[("OLD_URL", SECRET)]))
        .await
        .unwrap();
    plain.close().await;
    assert!(raw_config(&db.url).await.iter().any(|v| v.contains(SECRET)));

    // A store with the key encrypts what was plain and everything it writes.
    let key = [42u8; 32];
    let store = Store::connect(&db.url)
        .await
        .unwrap()
        .with_secrets(wharf_store::Secrets::new(&key));
    assert!(
        store.seal_config().await.unwrap() >= 2,
        "a value and a release snapshot"
    );
    assert_eq!(
        store.seal_config().await.unwrap(),
        0,
        "nothing is sealed twice"
    );
    store
        .update_config(&app.id, &owner.id, &set(&[("DATABASE_URL", SECRET)]))
        .await
        .unwrap();
    let vars = store.config_vars(&app.id).await.unwrap();
    assert_eq!(vars.get("DATABASE_URL"), Some(SECRET));
    assert_eq!(vars.get("OLD_URL"), Some(SECRET));
    let release = store.current_release(&app.id).await.unwrap().unwrap();
    assert_eq!(release.config.get("DATABASE_URL"), Some(SECRET));
    store.close().await;
    let raw = raw_config(&db.url).await;
    assert!(!raw.is_empty());
    for value in &raw {
        assert!(!value.contains("hunter2"), "stored in plain text: {value}");
        assert!(value.starts_with("wharf:enc1:"), "{value}");
    }
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(db.dir.path()).unwrap() {
            let bytes = match std::fs::read(entry.unwrap().path()) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot read the database files: {e}"),
            };
            assert!(
                !bytes.windows(7).any(|w| w == b"hunter2"),
                "a database file holds the value in plain text"
            );
        }
    }

    // Another key can't read them, and says why.
    let wrong = Store::connect(&db.url)
        .await
        .unwrap()
        .with_secrets(wharf_store::Secrets::new(&[7u8; 32]));
    let refused = wrong.config_vars(&app.id).await.unwrap_err();
    assert!(
        refused.to_string().contains("WHARF_SECRET_KEY"),
        "{refused}"
    );
    wrong.close().await;
}

on_both_databases!(certificates_are_kept_with_their_keys_sealed);

/// Certificates: added, found by id or name, replaced, chosen for a domain (only one of the
/// app's own), removed (the domain goes back to any), their keys sealed at rest.
async fn certificates_are_kept_with_their_keys_sealed(backend: Backend) {
    use wharf_core::domain::Hostname;
    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----\n";
    let db = TestDatabase::new(backend).await;
    let store = Store::connect(&db.url)
        .await
        .unwrap()
        .with_secrets(wharf_store::Secrets::new(&[7u8; 32]));
    let owner = store.admin_account().await.unwrap();
    let shop = store
        .create_app(&AppName::parse("shop").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    let blog = store
        .create_app(&AppName::parse("blog").unwrap(), &owner.id, "wharf-1")
        .await
        .unwrap();
    let www = store
        .add_domain(&shop.id, &Hostname::parse("www.shop.example").unwrap())
        .await
        .unwrap();
    let cert = store
        .add_certificate(
            &shop.id,
            "shop-1",
            wharf_store::SOURCE_UPLOADED,
            "CHAIN",
            KEY,
        )
        .await
        .unwrap();
    assert_eq!(cert.private_key, KEY);
    assert!(matches!(
        store
            .add_certificate(&blog.id, "shop-1", wharf_store::SOURCE_UPLOADED, "C", KEY)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.certificate(&shop.id, "shop-1").await.unwrap(), cert);
    assert!(store.certificate(&blog.id, &cert.id).await.is_err());
    let blog_cert = store
        .add_certificate(&blog.id, "blog-1", wharf_store::SOURCE_UPLOADED, "C", KEY)
        .await
        .unwrap();

    // A domain names one of its app's certificates, never another app's.
    let pinned = store
        .set_domain_certificate(&shop.id, &www.id, Some(&cert.id))
        .await
        .unwrap();
    assert_eq!(pinned.certificate_id.as_deref(), Some(cert.id.as_str()));
    assert!(store
        .set_domain_certificate(&shop.id, &www.id, Some(&blog_cert.id))
        .await
        .is_err());
    let table = store.route_table().await.unwrap();
    let row = table.iter().find(|r| r.app_id == shop.id).unwrap();
    assert_eq!(row.pins, [("www.shop.example".to_owned(), cert.id.clone())]);
    assert!(row.https_redirect);
    assert_eq!(&store.app_routes(&shop.id).await.unwrap(), row);

    let replaced = store
        .replace_certificate(&shop.id, "shop-1", wharf_store::SOURCE_ACME, "CHAIN2", KEY)
        .await
        .unwrap();
    assert_eq!(
        (replaced.id.as_str(), replaced.source.as_str()),
        (cert.id.as_str(), "acme")
    );
    assert_eq!(store.all_certificates().await.unwrap().len(), 2);

    // The key is not stored as given.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    use sqlx::Row;
    for row in sqlx::query("SELECT private_key FROM certificates")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let stored: String = row.try_get("private_key").unwrap();
        assert!(!stored.contains("secret-key-material"), "{stored}");
    }
    pool.close().await;

    store.remove_certificate(&shop.id, "shop-1").await.unwrap();
    assert!(store
        .domain(&shop.id, &www.id)
        .await
        .unwrap()
        .certificate_id
        .is_none());
    assert_eq!(store.certificates(&shop.id).await.unwrap(), []);
    store.close().await;
}
