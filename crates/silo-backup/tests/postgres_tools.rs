//! Which `pg_dump` a backup uses: one at least as new as the server, or a
//! clear refusal naming both versions and what to install. Its own test
//! binary: it points `SILO_PG_BINDIR` at a folder of its own.

use std::os::unix::fs::PermissionsExt;

use silo_backup::BackupError;
use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, Stores, StoresConfig};
use silo_testkit::{Prefix, admin_url};

#[tokio::test]
async fn an_older_pg_dump_than_the_server_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = Prefix::new();
    let text = format!(
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.orders]\ndatabase = \"{}\"\nrole = \"{}\"\n",
        prefix.name("orders"),
        prefix.name("orders_svc")
    );
    let m =
        Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: m.data_dir.clone(),
        admin_url: Some(admin_url()),
        concurrency: 1,
    });
    let svc = &m.services[0];
    stores
        .engine(svc)
        .unwrap()
        .provision(svc, ProvisionOptions::default())
        .await
        .unwrap();

    // A pg_dump of PostgreSQL 9.6, as an old client package would have.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("pg_dump");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: the only test in this binary.
    unsafe { std::env::set_var(silo_backup::postgres::BINDIR_VAR, &bin) };

    let staging = tempfile::tempdir().unwrap();
    let err = silo_backup::postgres::dump(&stores.credentials(svc).unwrap(), staging.path())
        .await
        .unwrap_err();
    let BackupError::Tool { reason, help, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(reason.contains("9.6.24"), "{reason}");
    assert!(reason.contains("PostgreSQL 15"), "{reason}");
    assert!(help.contains("postgresql-client-15"), "{help}");
    assert!(help.contains("SILO_PG_BINDIR"), "{help}");
    assert!(std::fs::read_dir(staging.path()).unwrap().next().is_none());

    // A pg_dump of the server's version that fails: its own words come
    // back in the error. It records what it was given: the password in
    // its environment, never on its command line.
    let seen = dir.path().join("seen");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 15.99'; exit 0; fi\n\
             echo \"args: $*\" > {seen}\n\
             echo \"password set: ${{PGPASSWORD:+yes}}\" >> {seen}\n\
             echo 'pg_dump: error: query failed: the disk is on fire' >&2\n\
             exit 1\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    let creds = stores.credentials(svc).unwrap();
    let password = creds.password.as_ref().unwrap().expose().to_string();
    let err = silo_backup::postgres::dump(&creds, staging.path())
        .await
        .unwrap_err();
    let BackupError::ToolFailed { tool, stderr, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*tool, "pg_dump");
    assert!(stderr.contains("the disk is on fire"), "{stderr}");
    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(seen.contains("--snapshot="), "{seen}");
    assert!(seen.contains("password set: yes"), "{seen}");
    assert!(!seen.contains(&password), "{seen}");
    assert!(!format!("{err:?}").contains(&password));
}
