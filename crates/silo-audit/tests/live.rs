//! Live audits on real PostgreSQL: a clean project audits clean with a full
//! own/denied matrix; each check's violation, planted with admin SQL, is
//! found with its exact check id and service, and `--fix`'s plan repairs it
//! to a clean re-audit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use silo_audit::{Access, Check, Options, Report, fix};
use silo_manifest::{Manifest, Overrides};
use silo_store::{ProvisionOptions, SecretsDir, Stores, StoresConfig};
use silo_testkit::{Prefix, TempServer, admin_url};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

struct Project {
    _dir: tempfile::TempDir,
    prefix: Prefix,
    manifest: Manifest,
    stores: Stores,
    admin: String,
}

impl Project {
    /// Services `names` on PostgreSQL at `admin`, provisioned.
    async fn on(admin: &str, names: &[&str]) -> Project {
        let prefix = Prefix::new();
        let mut text = String::new();
        for name in names {
            text.push_str(&format!(
                "[services.{name}]\ndatabase = \"{}\"\nrole = \"{}\"\n",
                prefix.name(name),
                prefix.name(&format!("{name}_svc"))
            ));
        }
        Project::provision(prefix, &text, admin, Some(admin)).await
    }

    /// The PostgreSQL project whose manifest ends with `services`,
    /// provisioned; `shared_admin` is the shared server's admin URL, if
    /// any, and `admin` the URL `admin_sql` uses.
    async fn provision(
        prefix: Prefix,
        services: &str,
        admin: &str,
        shared_admin: Option<&str>,
    ) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n{services}");
        let manifest =
            Manifest::from_str(&text, &dir.path().join("silo.toml"), &Overrides::default())
                .unwrap();
        let stores = Stores::new(StoresConfig {
            project: None,
            data_dir: manifest.data_dir.clone(),
            admin_url: shared_admin.map(str::to_string),
            concurrency: 4,
        });
        for s in &manifest.services {
            stores
                .engine(s)
                .unwrap()
                .provision(s, ProvisionOptions::default())
                .await
                .unwrap();
        }
        Project {
            _dir: dir,
            prefix,
            manifest,
            stores,
            admin: admin.to_string(),
        }
    }

    async fn new(names: &[&str]) -> Project {
        Project::on(&admin_url(), names).await
    }

    fn db(&self, service: &str) -> String {
        format!("\"{}\"", self.prefix.name(service))
    }

    fn role(&self, service: &str) -> String {
        format!("\"{}\"", self.prefix.name(&format!("{service}_svc")))
    }

    /// Runs `sql` as the administrator, in `service`'s database or in the
    /// admin database.
    async fn admin_sql(&self, service: Option<&str>, sql: &str) {
        let mut url = url::Url::parse(&self.admin).unwrap();
        if let Some(s) = service {
            url.set_path(&self.prefix.name(s));
        }
        let mut conn = PgConnection::connect(url.as_str()).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }

    /// The audit. On the shared test server, whose pg_hba.conf is the
    /// machine's and not the test's, `hba-rules` findings are left out:
    /// that check is proven on throwaway servers whose pg_hba.conf the
    /// test writes.
    async fn audit_with(&self, thorough: bool) -> Report {
        let options = Options {
            thorough,
            code: false,
            ..Options::default()
        };
        let mut report = silo_audit::audit(&self.manifest, &self.stores, &options)
            .await
            .unwrap();
        if self.admin == admin_url() {
            report.findings.retain(|f| f.check != Check::HbaRules);
        }
        report
    }

    async fn audit(&self) -> Report {
        self.audit_with(false).await
    }

    /// Applies every fixable finding's remediation, then audits again.
    async fn fix(&self, report: &Report) -> Report {
        for step in fix::plan(report) {
            fix::apply(&step, &self.manifest, &self.stores)
                .await
                .unwrap_or_else(|e| panic!("{step}: {e}"));
        }
        self.audit().await
    }
}

/// The finding of `check` about `service` (and `other`), or a panic that
/// shows the report.
fn expect(report: &Report, check: Check, service: &str, other: Option<&str>) {
    let found = report.findings.iter().any(|f| {
        f.check == check
            && f.service == service
            && (other.is_none() || f.other_service.as_deref() == other)
    });
    assert!(
        found,
        "expected {check} about {service} ({other:?}); got:\n{}",
        silo_audit::render::human(report, false)
    );
}

fn assert_clean(report: &Report) {
    assert!(
        report.is_clean(),
        "expected a clean audit:\n{}",
        silo_audit::render::human(report, false)
    );
}

fn access(report: &Report, role: &str, store: &str) -> Access {
    report
        .matrix
        .iter()
        .find(|c| c.role_service == role && c.store_service == store)
        .map(|c| c.access)
        .unwrap()
}

#[tokio::test]
async fn a_provisioned_project_is_clean_with_a_full_matrix() {
    let p = Project::new(&["a", "b", "c"]).await;
    let report = p.audit().await;
    assert_clean(&report);
    assert_eq!(report.matrix.len(), 9);
    for c in &report.matrix {
        let want = if c.role_service == c.store_service {
            Access::Own
        } else {
            Access::Denied
        };
        assert_eq!(c.access, want, "{c:?}");
    }
    // Own store and one sibling each by default; every pair with thorough.
    assert_eq!(report.probes, 6);
    let thorough = p.audit_with(true).await;
    assert_clean(&thorough);
    assert_eq!(thorough.probes, 9);
}

#[tokio::test]
async fn connect_granted_to_a_sibling_role() {
    let p = Project::new(&["a", "b", "c"]).await;
    p.admin_sql(
        None,
        &format!("GRANT CONNECT ON DATABASE {} TO {}", p.db("b"), p.role("a")),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::CrossAccess, "a", Some("b"));
    assert_eq!(access(&report, "a", "b"), Access::Open);
    assert_eq!(access(&report, "c", "b"), Access::Denied);
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn membership_in_a_sibling_role_and_in_read_all_data() {
    let p = Project::new(&["a", "b"]).await;
    p.admin_sql(
        None,
        &format!(
            "GRANT {} TO {}; GRANT pg_read_all_data TO {}",
            p.role("b"),
            p.role("a"),
            p.role("b")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::CrossAccess, "a", Some("b"));
    expect(&report, Check::CrossAccess, "b", None);
    assert_eq!(access(&report, "a", "b"), Access::Open);
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn a_sibling_role_owns_the_database() {
    let p = Project::new(&["a", "b"]).await;
    p.admin_sql(
        None,
        &format!("ALTER DATABASE {} OWNER TO {}", p.db("b"), p.role("a")),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::CrossAccess, "a", Some("b"));
    expect(&report, Check::ForeignOwner, "b", Some("a"));
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn grants_to_public() {
    let p = Project::new(&["a", "b"]).await;
    p.admin_sql(
        None,
        &format!("GRANT CONNECT ON DATABASE {} TO PUBLIC", p.db("b")),
    )
    .await;
    p.admin_sql(
        Some("b"),
        &format!(
            "SET ROLE {}; CREATE TABLE invoices (id bigint); GRANT SELECT ON invoices TO PUBLIC;
             RESET ROLE; GRANT USAGE ON SCHEMA public TO PUBLIC;",
            p.role("b")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::PublicPrivileges, "b", None);
    let public = report
        .findings
        .iter()
        .filter(|f| f.check == Check::PublicPrivileges)
        .count();
    assert_eq!(public, 3, "database, schema and table");
    assert_eq!(access(&report, "a", "b"), Access::Open);
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn privileged_role_attributes_and_memberships() {
    let p = Project::new(&["a", "b"]).await;
    p.admin_sql(
        None,
        &format!(
            "ALTER ROLE {} SUPERUSER CREATEROLE; GRANT pg_read_server_files TO {}",
            p.role("a"),
            p.role("b")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::RoleAttributes, "a", None);
    expect(&report, Check::RoleAttributes, "b", None);
    // A superuser reaches every store.
    expect(&report, Check::CrossAccess, "a", Some("b"));
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn objects_with_foreign_owners() {
    let p = Project::new(&["a", "b"]).await;
    p.admin_sql(
        Some("b"),
        &format!(
            "CREATE TABLE made_by_admin (id bigint);
             CREATE TABLE made_by_a (id bigint); ALTER TABLE made_by_a OWNER TO {};
             CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            p.role("a")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::ForeignOwner, "b", Some("a"));
    let admin_owned: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == Check::ForeignOwner && f.other_service.is_none())
        .collect();
    assert_eq!(admin_owned.len(), 2, "table and function: {admin_owned:?}");
    assert!(
        admin_owned
            .iter()
            .all(|f| f.severity == silo_audit::Severity::Warning)
    );
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn foreign_data_into_a_sibling_store() {
    let p = Project::new(&["a", "b", "c"]).await;
    p.admin_sql(
        Some("b"),
        &format!(
            "CREATE EXTENSION postgres_fdw;
             CREATE SERVER sibling FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname '{}');
             CREATE USER MAPPING FOR {} SERVER sibling OPTIONS (user '{}');",
            p.prefix.name("c"),
            p.role("b"),
            p.prefix.name("c_svc")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::ForeignData, "b", Some("c"));
    expect(&report, Check::ForeignData, "b", None);
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn a_subscription_to_a_sibling_store() {
    let p = Project::new(&["a", "b"]).await;
    let sub = p.prefix.name("sub");
    p.admin_sql(
        Some("a"),
        &format!(
            "CREATE SUBSCRIPTION {sub} CONNECTION 'host=127.0.0.1 dbname={}' PUBLICATION p
             WITH (connect = false)",
            p.prefix.name("b")
        ),
    )
    .await;
    let report = p.audit().await;
    expect(&report, Check::ForeignData, "a", Some("b"));
    // Not fixable automatically: the slot lives on the publisher.
    assert!(fix::plan(&report).is_empty());
    p.admin_sql(
        Some("a"),
        &format!("ALTER SUBSCRIPTION {sub} SET (slot_name = NONE); DROP SUBSCRIPTION {sub}"),
    )
    .await;
    assert_clean(&p.audit().await);
}

#[tokio::test]
async fn public_create_and_public_security_definers() {
    let p = Project::new(&["a"]).await;
    p.admin_sql(
        Some("a"),
        &format!(
            "GRANT CREATE ON SCHEMA public TO PUBLIC; SET ROLE {};
             CREATE FUNCTION purge() RETURNS void SECURITY DEFINER LANGUAGE sql AS 'SELECT';",
            p.role("a")
        ),
    )
    .await;
    let report = p.audit().await;
    let count = report
        .findings
        .iter()
        .filter(|f| f.check == Check::PublicSchema && f.service == "a")
        .count();
    assert_eq!(count, 2, "{}", silo_audit::render::human(&report, false));
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn copied_secrets_file() {
    let p = Project::new(&["a", "b"]).await;
    let secrets = SecretsDir::new(&p.manifest.data_dir);
    std::fs::copy(secrets.path("b"), secrets.path("a")).unwrap();
    let report = p.audit().await;
    expect(&report, Check::SharedCredentials, "a", Some("b"));
    expect(&report, Check::OwnAccess, "a", None);
    assert_clean(&p.fix(&report).await);
}

#[tokio::test]
async fn secrets_file_mode() {
    let p = Project::new(&["a"]).await;
    let file = SecretsDir::new(&p.manifest.data_dir).path("a");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = p.audit().await;
    expect(&report, Check::StoreFiles, "a", None);
    assert_clean(&p.fix(&report).await);
    assert_eq!(mode(&file), 0o600);
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn instance_isolated_services_on_one_server() {
    let prefix = Prefix::new();
    let var = |s: &str| {
        format!(
            "SILO_AUDIT_TEST_{}{}",
            prefix.value.to_uppercase(),
            s.to_uppercase()
        )
    };
    let mut text = String::new();
    for name in ["a", "b"] {
        // SAFETY: each test's variables have a unique prefix.
        unsafe { std::env::set_var(var(name), admin_url()) };
        text.push_str(&format!(
            "[services.{name}]\nisolation = \"instance\"\nurl_env = \"{}\"\ndatabase = \"{}\"\nrole = \"{}\"\n",
            var(name),
            prefix.name(name),
            prefix.name(&format!("{name}_svc"))
        ));
    }
    // Each service reaches its server through its own url_env: no shared
    // admin URL.
    let p = Project::provision(prefix, &text, &admin_url(), None).await;
    let report = p.audit().await;
    expect(&report, Check::InstanceSharing, "a", Some("b"));
    expect(&report, Check::InstanceSharing, "b", Some("a"));
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.check == Check::InstanceSharing && f.fix.is_none()),
        "{}",
        silo_audit::render::human(&report, false)
    );
}

/// On a server with password authentication: a password changed behind
/// silo's back makes the service's probes prove nothing (28P01), which is
/// reported, never taken for a denial; a pg_hba line naming a service role
/// for `all` databases is reported.
#[tokio::test]
async fn bad_passwords_break_probes_and_hba_lines_are_read() {
    let server = TempServer::start();
    let p = Project::on(&server.admin_url(), &["a", "b", "c"]).await;
    assert_clean(&p.audit().await);

    p.admin_sql(
        None,
        &format!("ALTER ROLE {} PASSWORD 'changed-behind-silo'", p.role("b")),
    )
    .await;
    let report = p.audit().await;
    let broken: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.service == "b")
        .map(|f| (f.check, f.message.clone()))
        .collect();
    assert!(
        broken
            .iter()
            .any(|(c, m)| *c == Check::OwnAccess && m.contains("28P01")),
        "{broken:?}"
    );
    assert!(
        broken
            .iter()
            .any(|(c, m)| *c == Check::CrossAccess && m.contains("probe broken")),
        "{broken:?}"
    );
    assert_clean(&p.fix(&report).await);

    let hba = server.data_dir().join("pg_hba.conf");
    let mut text = std::fs::read_to_string(&hba).unwrap();
    text.insert_str(
        0,
        &format!(
            "host all {} 127.0.0.1/32 scram-sha-256\n",
            p.prefix.name("c_svc")
        ),
    );
    std::fs::write(&hba, text).unwrap();
    let report = p.audit().await;
    expect(&report, Check::HbaRules, "c", None);
}

/// Replaces the server's pg_hba.conf with `lines` and reloads it.
async fn set_hba(server: &TempServer, lines: &str) {
    std::fs::write(server.data_dir().join("pg_hba.conf"), lines).unwrap();
    let mut conn = PgConnection::connect(&server.admin_url()).await.unwrap();
    let reloaded: bool = sqlx::query_scalar("SELECT pg_reload_conf()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(reloaded);
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(errors, 0, "{lines}");
    let _ = conn.close().await;
}

/// Whether `service`'s role logs in to its database with no password.
async fn logs_in_without_password(p: &Project, server: &TempServer, service: &str) -> bool {
    let url = format!(
        "postgres://{}@127.0.0.1:{}/{}",
        p.prefix.name(&format!("{service}_svc")),
        server.port,
        p.prefix.name(service)
    );
    match PgConnection::connect(&url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            true
        }
        Err(_) => false,
    }
}

/// A server that trusts local connections lets anyone in as any service
/// role: each service gets an `hba-rules` warning per trusting line, with
/// the pg_hba.conf lines to write and the reload.
#[tokio::test]
async fn a_server_that_trusts_local_connections_is_not_clean() {
    let server = TempServer::start();
    set_hba(
        &server,
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .await;
    let p = Project::on(&server.admin_url(), &["a", "b"]).await;
    assert!(logs_in_without_password(&p, &server, "a").await);

    let report = p.audit().await;
    for service in ["a", "b"] {
        let found: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.check == Check::HbaRules && f.service == service)
            .collect();
        assert_eq!(
            found.len(),
            2,
            "the socket line and the 127.0.0.1 line:\n{}",
            silo_audit::render::human(&report, false)
        );
        let role = p.prefix.name(&format!("{service}_svc"));
        let db = p.prefix.name(service);
        for f in &found {
            assert_eq!(f.severity, silo_audit::Severity::Warning);
            assert!(
                f.message.contains("without a password (`trust`)"),
                "{}",
                f.message
            );
            assert!(f.message.contains(&format!("`{role}`")), "{}", f.message);
            assert!(
                f.remediation.contains("SELECT pg_reload_conf()"),
                "{}",
                f.remediation
            );
            assert!(f.fix.is_none(), "pg_hba.conf is edited by a person");
        }
        assert!(found.iter().any(|f| {
            f.message.contains("line 1 (`local all all trust`)")
                && f.remediation
                    .contains(&format!("`local {db} {role} scram-sha-256`"))
        }));
        assert!(found.iter().any(|f| {
            f.message.contains("from 127.0.0.1/32")
                && f.remediation
                    .contains(&format!("`host {db} {role} 127.0.0.1/32 scram-sha-256`"))
        }));
    }
    assert!(
        report.findings.iter().all(|f| f.check == Check::HbaRules),
        "{}",
        silo_audit::render::human(&report, false)
    );
}

/// The near miss: SCRAM for every connection a service role can make; a
/// trust line for the administrator only, and one that an earlier SCRAM
/// line always catches first. The roles need their passwords and the
/// audit is clean.
#[tokio::test]
async fn scram_for_service_roles_is_clean() {
    let server = TempServer::start();
    set_hba(
        &server,
        "local all postgres trust\n\
         local all all scram-sha-256\n\
         host all all 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    )
    .await;
    let p = Project::on(&server.admin_url(), &["a", "b"]).await;
    assert!(!logs_in_without_password(&p, &server, "a").await);
    let report = p.audit().await;
    assert_clean(&report);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

/// An administrator that is not a superuser cannot read pg_hba.conf: the
/// check is listed as skipped, saying why, and never passes silently.
#[tokio::test]
async fn without_a_superuser_hba_rules_is_skipped_and_says_why() {
    let server = TempServer::start();
    let p = Project::on(&server.admin_url(), &["a"]).await;
    let weak = p.prefix.name("weak_admin");
    // Member of the service role, so it may read the service database.
    p.admin_sql(
        None,
        &format!(
            "CREATE ROLE \"{weak}\" LOGIN CREATEDB CREATEROLE PASSWORD 'weak-admin-pw';
             GRANT {} TO \"{weak}\"",
            p.role("a")
        ),
    )
    .await;
    let stores = Stores::new(StoresConfig {
        project: None,
        data_dir: p.manifest.data_dir.clone(),
        admin_url: Some(format!(
            "postgres://{weak}:weak-admin-pw@127.0.0.1:{}/postgres",
            server.port
        )),
        concurrency: 4,
    });
    let options = Options {
        code: false,
        ..Options::default()
    };
    let report = silo_audit::audit(&p.manifest, &stores, &options)
        .await
        .unwrap();
    let skipped: Vec<&str> = report
        .skipped
        .iter()
        .filter(|s| s.check == Check::HbaRules)
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(skipped.len(), 1, "{:?}", report.skipped);
    assert!(
        skipped[0].contains("pg_hba_file_rules")
            && skipped[0].contains(&format!("needs a superuser, and `{weak}` is not one")),
        "{}",
        skipped[0]
    );
    let human = silo_audit::render::human(&report, false);
    assert!(human.contains("skipped hba-rules: "), "{human}");
}

/// The `leftovers` findings, as (service, message) pairs.
fn leftovers(report: &Report) -> Vec<(String, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.check == Check::Leftovers)
        .map(|f| (f.service.clone(), f.message.clone()))
        .collect()
}

/// A scratch database a killed `verify` left, owned by the service role,
/// is a `leftovers` warning about its service; a clean project has none.
#[tokio::test]
async fn a_leftover_scratch_database_is_reported() {
    let p = Project::new(&["a", "b"]).await;
    assert_eq!(leftovers(&p.audit().await), []);
    let scratch = format!("{}_scratch_0123abcd", p.prefix.name("a"));
    p.admin_sql(
        None,
        &format!("CREATE DATABASE \"{scratch}\" OWNER {}", p.role("a")),
    )
    .await;
    let report = p.audit().await;
    assert_eq!(
        leftovers(&report),
        [(
            "a".to_string(),
            format!("an interrupted run left scratch store {scratch}")
        )]
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.check == Check::Leftovers)
        .unwrap();
    assert_eq!(f.severity, silo_audit::Severity::Warning);
    assert_eq!(f.remediation, "`silo down a --yes` removes them");
    p.admin_sql(None, &format!("DROP DATABASE \"{scratch}\""))
        .await;
    assert_eq!(leftovers(&p.audit().await), []);
}

/// A service removed from silo.toml after `silo up` keeps its database,
/// role and credentials: the audit of the new manifest names it as an
/// orphan, with the command that removes it.
#[tokio::test]
async fn a_service_removed_from_the_manifest_is_an_orphan() {
    let p = Project::new(&["a", "b"]).await;
    let text = format!(
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n\
         [services.a]\ndatabase = \"{}\"\nrole = \"{}\"\n",
        p.prefix.name("a"),
        p.prefix.name("a_svc")
    );
    let fewer = Manifest::from_str(&text, &p.manifest.path, &Overrides::default()).unwrap();
    let report = silo_audit::audit(
        &fewer,
        &p.stores,
        &Options {
            code: false,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let found = leftovers(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "b");
    assert!(
        found[0].1.starts_with(
            "silo made a store for `b`, which silo.toml no longer names: credentials file"
        ),
        "{}",
        found[0].1
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.check == Check::Leftovers)
        .unwrap();
    assert_eq!(f.location.store(), Some(p.prefix.name("b").as_str()));
    assert!(
        f.remediation.starts_with("`silo down b --orphan --yes`"),
        "{}",
        f.remediation
    );
}
