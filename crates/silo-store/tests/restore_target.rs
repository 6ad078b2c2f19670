//! The restore-target seam on the real PostgreSQL server: what a swap
//! refuses, and that a refused swap changes nothing.

use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, RestoreInto, StoreError, Stores, StoresConfig, SwapOptions};
use silo_testkit::{Prefix, admin_url};
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_swap_never_ends_other_roles_sessions_and_refuses_foreign_targets() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let text = format!(
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n\
         [services.billing]\ndatabase = \"{}\"\nrole = \"{}\"\n",
        prefix.name("orders"),
        prefix.name("orders_svc"),
        prefix.name("billing"),
        prefix.name("billing_svc"),
    );
    let m =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: m.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 2,
    });
    let (orders, billing) = (&m.services[0], &m.services[1]);
    let engine = stores.engine(orders).unwrap();
    for s in [orders, billing] {
        engine
            .provision(s, ProvisionOptions::default())
            .await
            .unwrap();
    }

    // Another role's session on the live store: named, never ended.
    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_path(&orders.database);
    let mut admin = PgConnection::connect(url.as_str()).await.unwrap();
    let replacement = engine
        .restore_target(orders, RestoreInto::Replacement)
        .await
        .unwrap();
    let err = engine
        .swap(orders, &replacement, SwapOptions { terminate: true })
        .await
        .unwrap_err();
    match &err {
        StoreError::InUse {
            own_only, sessions, ..
        } => {
            assert!(!own_only);
            assert!(
                sessions.iter().any(|s| s.starts_with("postgres")),
                "{sessions:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    sqlx::query("SELECT 1").execute(&mut admin).await.unwrap();
    let _ = admin.close().await;
    // Nothing moved, and the service still connects to its own store.
    stores
        .connect_as(orders, "test")
        .await
        .unwrap()
        .close()
        .await;

    // Another service's store is no replacement for this one.
    let foreign = engine
        .swap(
            orders,
            &stores.credentials(billing).unwrap(),
            SwapOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(foreign, StoreError::Unsupported(_)), "{foreign:?}");

    // A replacement a killed restore left is a leftover `silo down` removes.
    let leftovers = engine.leftovers(orders).await.unwrap();
    assert!(
        leftovers.iter().any(|l| l.name == replacement.database),
        "{leftovers:?}"
    );
    let dropped = engine.drop_store(orders).await.unwrap();
    assert!(
        dropped
            .removed
            .iter()
            .any(|r| r.contains(&replacement.database)),
        "{dropped:?}"
    );
}
