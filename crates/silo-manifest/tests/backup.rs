//! `[services.<name>.backup]`, `[defaults.backup]` and `[backup]`: how a
//! service's policy is resolved, and one test per refused value, each with
//! the line and column it points at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use silo_manifest::{BackupDestination, Manifest, Overrides, Problem};

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn manifest(text: &str) -> Manifest {
    Manifest::from_str(
        text,
        Path::new("/srv/proj/silo.toml"),
        &Overrides::default(),
    )
    .unwrap_or_else(|e| panic!("{:#?}", e.problems().collect::<Vec<_>>()))
}

fn problems(text: &str) -> Vec<Problem> {
    match Manifest::from_str(
        text,
        Path::new("/srv/proj/silo.toml"),
        &Overrides::default(),
    ) {
        Ok(m) => panic!("expected problems, got a manifest: {m:?}"),
        Err(e) => e.problems().cloned().collect(),
    }
}

/// The single problem of `text`, as `(line, column, message)`.
fn one(text: &str) -> (usize, usize, String) {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, got {all:#?}");
    let p = all.remove(0);
    (p.line, p.column, p.message)
}

const HEAD: &str = "[project]\nname = \"p\"\n";

#[test]
fn the_issue_example_resolves() {
    let m = manifest(&format!(
        r#"{HEAD}[backup]
recipients = ["{RECIPIENT}"]
[services.battles.backup]
schedule = "0 */4 * * *"
retention = "30d"
destination = "file:///var/backups/battlescope/battles"
encrypt = true
"#
    ));
    let policy = m.service("battles").unwrap().backup.clone().unwrap();
    let schedule = policy.schedule.unwrap();
    assert_eq!(schedule.expression(), "0 */4 * * *");
    assert_eq!(schedule.timezone(), chrono_tz::UTC);
    assert_eq!(policy.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(policy.keep, None);
    assert_eq!(
        policy.destination,
        BackupDestination::Local("/var/backups/battlescope/battles".into())
    );
    assert!(policy.encrypt);
    assert_eq!(policy.verify_every, None);
    assert_eq!(policy.compression, None, "pg_dump's own default");
    assert_eq!(m.backup.recipients, [RECIPIENT]);
    assert!(!m.backup.backup_before_migrate);
}

#[test]
fn services_override_defaults_field_by_field() {
    let m = manifest(&format!(
        r#"{HEAD}[defaults]
backup_before_migrate = true
[defaults.backup]
schedule = "0 2 * * *"
timezone = "Europe/Paris"
keep = 7
destination = "s3://acme-backups/silo"
verify_every = 10
compression = 1
[services.battles.backup]
schedule = "0 */4 * * *"
retention = "30d"
[services.ingestion.backup]
keep = 3
compression = 0
destination = "../elsewhere/ingestion"
timezone = "America/New_York"
[services.search]
"#
    ));
    assert!(m.backup.backup_before_migrate);

    let battles = m.service("battles").unwrap().backup.clone().unwrap();
    let schedule = battles.schedule.unwrap();
    assert_eq!(schedule.expression(), "0 */4 * * *");
    // The defaults' zone applies to the service's own expression.
    assert_eq!(schedule.timezone(), chrono_tz::Europe::Paris);
    assert_eq!(battles.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(battles.keep, Some(7), "both may be set");
    assert_eq!(
        battles.destination,
        BackupDestination::S3 {
            bucket: "acme-backups".into(),
            prefix: "silo/battles".into()
        },
        "a defaults destination is a base with a prefix per service"
    );
    assert_eq!(battles.verify_every, Some(10));
    assert_eq!(battles.compression, Some(1));
    assert!(!battles.encrypt);

    let ingestion = m.service("ingestion").unwrap().backup.clone().unwrap();
    let schedule = ingestion.schedule.unwrap();
    assert_eq!(schedule.expression(), "0 2 * * *");
    assert_eq!(schedule.timezone(), chrono_tz::America::New_York);
    assert_eq!(ingestion.keep, Some(3));
    assert_eq!(
        ingestion.compression,
        Some(0),
        "its own level over the defaults'"
    );
    assert_eq!(ingestion.retention, None);
    assert_eq!(
        ingestion.destination,
        BackupDestination::Local("/srv/elsewhere/ingestion".into()),
        "a service's own destination is used as written, relative to silo.toml"
    );

    let search = m.service("search").unwrap().backup.clone().unwrap();
    assert_eq!(search.keep, Some(7));
    assert_eq!(
        search.destination.to_string(),
        "s3://acme-backups/silo/search"
    );
}

#[test]
fn without_a_backup_table_there_is_no_policy_and_the_default_destination() {
    let m = manifest(&format!("{HEAD}[services.orders]\n"));
    let orders = m.service("orders").unwrap();
    assert_eq!(orders.backup, None);
    assert_eq!(
        m.backup_destination(orders),
        BackupDestination::Local(PathBuf::from("/srv/proj/.silo/backups/orders"))
    );
    assert_eq!(m.backup, Default::default());
}

#[test]
fn a_policy_without_destination_goes_under_the_data_dir() {
    let m = manifest(&format!("{HEAD}[services.orders.backup]\nkeep = 2\n"));
    let orders = m.service("orders").unwrap();
    assert_eq!(
        orders.backup.as_ref().unwrap().destination,
        BackupDestination::Local(PathBuf::from("/srv/proj/.silo/backups/orders"))
    );
    assert_eq!(orders.backup.as_ref().unwrap().schedule, None);
}

#[test]
fn bad_cron_expression_carries_the_reason() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.battles.backup]\nschedule = \"0 25 * * *\"\n"
    ));
    assert_eq!((line, column), (4, 12));
    let expected = "invalid schedule `0 25 * * *`: in the hour field `25`: ";
    assert!(message.starts_with(expected), "{message}");
    assert!(
        message.len() > expected.len() + 5,
        "croner's reason follows: {message}"
    );
}

#[test]
fn six_field_cron_is_refused() {
    let all = problems(&format!(
        "{HEAD}[defaults.backup]\nschedule = \"0 0 */4 * * *\"\n[services.a]\n"
    ));
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!((all[0].line, all[0].column), (4, 12));
    assert!(all[0].help.as_ref().unwrap().contains("five fields"));
}

#[test]
fn a_schedule_that_never_fires_is_refused() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\nschedule = \"0 0 30 2 *\"\n"
    ));
    assert_eq!((line, column), (4, 12));
    assert_eq!(message, "the schedule `0 0 30 2 *` never fires");
}

#[test]
fn unknown_timezone() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\nschedule = \"@daily\"\ntimezone = \"Europe/Pariss\"\n"
    ));
    assert_eq!((line, column), (5, 12));
    assert_eq!(message, "unknown time zone `Europe/Pariss`");
}

#[test]
fn timezone_without_schedule() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.backup]\ntimezone = \"UTC\"\n"));
    assert_eq!((line, column), (4, 12));
    assert_eq!(
        message,
        "service `a` sets a backup `timezone` but no `schedule`"
    );
}

#[test]
fn retention_of_zero() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.backup]\nretention = \"0d\"\n"));
    assert_eq!((line, column), (4, 13));
    assert!(message.starts_with("retention `0d` is zero"), "{message}");
}

#[test]
fn retention_without_unit() {
    let (line, column, message) = one(&format!(
        "{HEAD}[defaults.backup]\nretention = \"30\"\n[services.a]\n"
    ));
    assert_eq!((line, column), (4, 13));
    assert_eq!(message, "invalid retention `30`");
}

#[test]
fn keep_of_zero() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.backup]\nkeep = 0\n"));
    assert_eq!((line, column), (4, 8));
    assert_eq!(message, "keep must be 1 or more, not 0");
}

#[test]
fn compression_past_nine() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.backup]\ncompression = 10\n"));
    assert_eq!((line, column), (4, 15));
    assert_eq!(message, "compression must be 0 to 9, not 10");
}

#[test]
fn verify_every_of_zero() {
    let (line, column, message) = one(&format!("{HEAD}[services.a.backup]\nverify_every = -2\n"));
    assert_eq!((line, column), (4, 16));
    assert_eq!(message, "verify_every must be 1 or more, not -2");
}

#[test]
fn unknown_destination_scheme() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"gs://bucket/a\"\n"
    ));
    assert_eq!((line, column), (4, 15));
    assert_eq!(
        message,
        "unknown destination scheme `gs` in `gs://bucket/a`"
    );
}

#[test]
fn file_url_without_absolute_path() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"file://backups/a\"\n"
    ));
    assert_eq!((line, column), (4, 15));
    assert!(message.contains("is not a local folder"), "{message}");
}

#[test]
fn bad_bucket_name() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"s3://Backups_2026/a\"\n"
    ));
    assert_eq!((line, column), (4, 15));
    assert_eq!(
        message,
        "invalid S3 bucket name `Backups_2026` in `s3://Backups_2026/a`"
    );
}

#[test]
fn unknown_key_in_backup_table() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\nschedule = \"@daily\"\nretain = \"30d\"\n"
    ));
    assert_eq!((line, column), (5, 1));
    assert!(
        message.starts_with("unknown field `retain`, expected one of `schedule`"),
        "{message}"
    );
}

#[test]
fn unknown_key_in_project_backup_table() {
    let (line, column, message) = one(&format!("{HEAD}[backup]\nrecipient = []\n"));
    assert_eq!((line, column), (4, 1));
    assert!(
        message.starts_with("unknown field `recipient`"),
        "{message}"
    );
}

#[test]
fn encrypt_without_recipients() {
    let (line, column, message) = one(&format!(
        "{HEAD}[defaults.backup]\nencrypt = true\n[services.a]\n[services.b]\n"
    ));
    assert_eq!((line, column), (4, 11), "reported once, where it is set");
    assert_eq!(
        message,
        "`encrypt = true` but the project has no age recipients"
    );
    // `encrypt = false` needs none.
    manifest(&format!("{HEAD}[services.a.backup]\nencrypt = false\n"));
}

#[test]
fn mistyped_recipient() {
    let typo = RECIPIENT.replace("ql3z", "ql3x");
    let (line, column, message) = one(&format!(
        "{HEAD}[backup]\nrecipients = [\n  \"{RECIPIENT}\",\n  \"{typo}\",\n]\n[services.a]\n"
    ));
    assert_eq!((line, column), (6, 3));
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn a_refused_recipient_is_one_problem_even_with_encrypt() {
    // The only recipient is refused; `encrypt = true` is not reported
    // again as having none.
    let (line, column, message) = one(&format!(
        "{HEAD}[backup]\nrecipients = [\"\"]\n[services.a.backup]\nencrypt = true\n"
    ));
    assert_eq!((line, column), (4, 15));
    assert!(message.contains("does not start with `age1`"), "{message}");
}

#[test]
fn two_services_backing_up_to_one_place() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"/var/backups/x\"\n[services.b.backup]\ndestination = \"file:///var/backups/x/\"\n"
    ));
    assert_eq!((line, column), (6, 15));
    assert_eq!(
        message,
        "services `a` and `b` both back up to `/var/backups/x`"
    );
}

#[test]
fn one_service_backing_up_inside_another() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"s3://bucket-1/silo/a\"\n[services.b.backup]\ndestination = \"s3://bucket-1/silo\"\n"
    ));
    assert_eq!((line, column), (6, 15), "the later of the two");
    assert_eq!(
        message,
        "the backups of `a` (`s3://bucket-1/silo/a`) would be inside the backups of `b` (`s3://bucket-1/silo`)"
    );
    // Same prefix, other bucket: apart.
    manifest(&format!(
        "{HEAD}[services.a.backup]\ndestination = \"s3://bucket-1/silo/a\"\n[services.b.backup]\ndestination = \"s3://bucket-2/silo\"\n"
    ));
}

#[test]
fn every_bad_value_is_reported_at_once() {
    let all = problems(&format!(
        "{HEAD}[services.a.backup]\nschedule = \"nope\"\nretention = \"0w\"\nkeep = 0\ndestination = \"ftp://x\"\n"
    ));
    let at: Vec<_> = all.iter().map(|p| (p.line, p.column)).collect();
    assert_eq!(at, [(4, 12), (5, 13), (6, 8), (7, 15)], "{all:#?}");
}

/// A service on a server of its own, as `method = "pgbackrest"` needs.
const INSTANCE: &str = "[services.battles]\nengine = \"postgres\"\nisolation = \"instance\"\nurl_env = \"BATTLES_PG_URL\"\n";

#[test]
fn pgbackrest_on_an_instance_service_resolves_with_defaults() {
    let m = manifest(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"/var/lib/postgresql/15/battles\"\n"
    ));
    let policy = m.service("battles").unwrap().backup.clone().unwrap();
    let settings = policy.pgbackrest().expect("pgbackrest");
    assert_eq!(
        settings.pg_data,
        PathBuf::from("/var/lib/postgresql/15/battles")
    );
    assert_eq!(
        settings.repository,
        PathBuf::from("/srv/proj/.silo/pgbackrest/battles")
    );
    assert_eq!(settings.stanza, "battles");

    let m = manifest(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"/pg\"\nrepository = \"/var/backups/pgbackrest/battles\"\nstanza = \"bs-battles\"\nkeep = 3\n"
    ));
    let policy = m.service("battles").unwrap().backup.clone().unwrap();
    let settings = policy.pgbackrest().unwrap();
    assert_eq!(
        settings.repository,
        PathBuf::from("/var/backups/pgbackrest/battles")
    );
    assert_eq!(settings.stanza, "bs-battles");
    assert_eq!(policy.keep, Some(3));

    let m = manifest(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\nkeep = 3\n"
    ));
    let policy = m.service("battles").unwrap().backup.clone().unwrap();
    assert_eq!(policy.method, silo_manifest::BackupMethod::Dump);
}

#[test]
fn pgbackrest_needs_instance_isolation() {
    let (line, column, message) = one(&format!(
        "{HEAD}[services.battles]\nengine = \"postgres\"\n[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"/pg\"\n"
    ));
    assert_eq!((line, column), (6, 10));
    assert!(message.contains("`database` isolation"), "{message}");

    let (line, _, message) = one(&format!(
        "{HEAD}[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"/pg\"\n"
    ));
    assert_eq!(line, 4);
    assert!(message.contains("on sqlite"), "{message}");
}

#[test]
fn pgbackrest_needs_an_absolute_pg_data() {
    let (line, column, message) = one(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\nmethod = \"pgbackrest\"\n"
    ));
    assert_eq!((line, column), (8, 10));
    assert!(message.contains("has no `pg_data`"), "{message}");

    let (line, column, message) = one(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"data\"\n"
    ));
    assert_eq!((line, column), (9, 11));
    assert!(message.contains("not an absolute path"), "{message}");
}

#[test]
fn pgbackrest_refusals_point_at_their_values() {
    for (extra, line, says) in [
        ("method = \"rsync\"\n", 8, "unknown backup method `rsync`"),
        ("stanza = \"a b\"\n", 10, "invalid stanza name"),
        ("repository = \"/pg/backups\"\n", 10, "overlap"),
        ("destination = \"/b\"\n", 10, "goes to its `repository`"),
    ] {
        let text = if extra.starts_with("method") {
            format!("{HEAD}{INSTANCE}[services.battles.backup]\n{extra}pg_data = \"/pg\"\n")
        } else {
            format!(
                "{HEAD}{INSTANCE}[services.battles.backup]\nmethod = \"pgbackrest\"\npg_data = \"/pg\"\n{extra}"
            )
        };
        let (l, _, message) = one(&text);
        assert_eq!(l, line, "{extra}: {message}");
        assert!(message.contains(says), "{extra}: {message}");
    }
    let (line, _, message) = one(&format!(
        "{HEAD}{INSTANCE}[services.battles.backup]\npg_data = \"/pg\"\n"
    ));
    assert_eq!(line, 8);
    assert!(message.contains("backed up by dumps"), "{message}");
    let (line, _, message) = one(&format!(
        "{HEAD}[defaults.backup]\nmethod = \"pgbackrest\"\n{INSTANCE}"
    ));
    assert_eq!(line, 4);
    assert!(message.contains("chosen per service"), "{message}");
}
