//! S3 destinations against a real S3-compatible server (moto, started by
//! each test; see `silo_testkit::S3Server`): the same object operations as
//! local folders, and the errors a user meets when S3 is set up wrong.

mod objects_support;

use std::io::Write;
use std::time::Duration;

use object_store::path::Path;
use silo_backup::objects::{self, PART_SIZE};
use silo_backup::s3::{self, S3Destination};
use silo_backup::{BackupError, FileEntry};
use silo_testkit::S3Server;

use objects_support::{meta_for, noise, stage};

fn open(server: &S3Server, prefix: &str) -> S3Destination {
    s3::open_with_env(&server.url(prefix), server.env()).unwrap()
}

fn with_env(server: &S3Server, key: &str, value: &str) -> Vec<(String, String)> {
    server
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k == key {
                (k, value.to_string())
            } else {
                (k, v)
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_megabyte_backup_round_trips_through_s3() {
    let Some(server) = S3Server::start_or_skip("a_multi_megabyte_backup_round_trips_through_s3")
    else {
        return;
    };
    let dest = open(&server, "battlescope/battles");
    s3::check(&dest).await.unwrap();
    let staging = tempfile::tempdir().unwrap();
    let restored = tempfile::tempdir().unwrap();
    let dump = noise(PART_SIZE * 2 + 777, 11);
    let meta = stage(
        staging.path(),
        &[
            ("schema.json", b"{\"tables\":[]}".to_vec()),
            ("dump.pgc", dump.clone()),
        ],
    )
    .await;

    objects::put_backup(dest.store.as_ref(), &dest.prefix, staging.path(), &meta)
        .await
        .unwrap();
    // The large file went up in parts, the small one in one request.
    let log = server.log();
    assert!(
        log.lines()
            .filter(|l| l.contains("dump.pgc?") && l.contains("partNumber="))
            .count()
            >= 3,
        "{log}"
    );
    assert!(log.contains("PUT /silo-test/battlescope/battles/"), "{log}");

    let listed = objects::list_backups(dest.store.as_ref(), &dest.prefix)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].has_meta);
    assert_eq!(listed[0].id, meta.id);
    let read = objects::read_meta(dest.store.as_ref(), &dest.prefix, &meta.id)
        .await
        .unwrap();
    assert_eq!(read, meta);

    for FileEntry { name, size, sha256 } in &meta.files {
        let to = restored.path().join(name);
        let got = objects::get_file(
            dest.store.as_ref(),
            &objects::backup_path(&dest.prefix, &meta.id).child(name.as_str()),
            &to,
        )
        .await
        .unwrap();
        assert_eq!(&got, &(*size, sha256.clone()), "{name}");
    }
    assert!(std::fs::read(restored.path().join("dump.pgc")).unwrap() == dump);

    // Another service's prefix in the same bucket is not touched by a delete.
    let other = open(&server, "battlescope/search");
    let other_meta = stage(staging.path(), &[("schema.json", b"{}".to_vec())]).await;
    objects::put_backup(
        other.store.as_ref(),
        &other.prefix,
        staging.path(),
        &other_meta,
    )
    .await
    .unwrap();

    let deleted = objects::delete_backup(dest.store.as_ref(), &dest.prefix, &meta.id)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    assert!(
        objects::list_backups(dest.store.as_ref(), &dest.prefix)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        objects::list_backups(other.store.as_ref(), &other.prefix)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_missing_object_and_a_missing_bucket_are_named() {
    let Some(server) = S3Server::start_or_skip("a_missing_object_and_a_missing_bucket_are_named")
    else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let dest = open(&server, "p");

    let err = objects::get_file(
        dest.store.as_ref(),
        &Path::from("p/20261128T010203Z-0000/meta.json"),
        &out.path().join("m"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BackupError::ObjectMissing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "p/20261128T010203Z-0000/meta.json is missing at s3://silo-test"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no file left behind"
    );

    let nobucket = s3::open_with_env("s3://no-such-bucket/p", server.env()).unwrap();
    let err = s3::check(&nobucket).await.unwrap_err();
    assert!(
        matches!(err, BackupError::S3BucketMissing { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the bucket of s3://no-such-bucket/p at {} does not exist",
            server.endpoint()
        )
    );
    // The same from the object operations, which know only the bucket.
    let err = objects::list_backups(nobucket.store.as_ref(), &nobucket.prefix)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::S3BucketMissing { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wrong_keys_are_refused_by_name_and_no_secret_is_shown() {
    let Some(server) = S3Server::start_authenticating_or_skip(
        "wrong_keys_are_refused_by_name_and_no_secret_is_shown",
    ) else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let missing = Path::from("p/20261128T010203Z-0000/meta.json");
    let read = |env: Vec<(String, String)>| {
        let to = out.path().join("m");
        let missing = missing.clone();
        let url = server.url("p");
        async move {
            let dest = s3::open_with_env(&url, env).unwrap();
            objects::get_file(dest.store.as_ref(), &missing, &to)
                .await
                .unwrap_err()
        }
    };

    // The right keys get as far as the object not being there.
    let err = read(server.env()).await;
    assert!(matches!(err, BackupError::ObjectMissing { .. }), "{err:?}");

    let wrong_secret = "wR0ngSecretKeyWr0ngSecretKeyWr0ngSecret00";
    let err = read(with_env(&server, "AWS_SECRET_ACCESS_KEY", wrong_secret)).await;
    assert!(matches!(err, BackupError::S3Denied { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("SignatureDoesNotMatch"), "{shown}");
    assert!(
        !shown.contains(wrong_secret),
        "the secret is never shown: {shown}"
    );
    assert!(!shown.contains(&server.secret_access_key), "{shown}");

    let err = read(with_env(
        &server,
        "AWS_ACCESS_KEY_ID",
        "AKIANOSUCHUSER000000",
    ))
    .await;
    assert!(matches!(err, BackupError::S3Denied { .. }), "{err:?}");
    assert!(err.to_string().contains("InvalidAccessKeyId"), "{err}");
    assert!(
        err.to_string()
            .starts_with("s3://silo-test refused access: "),
        "{err}"
    );
}

#[tokio::test]
async fn an_endpoint_that_does_not_answer_fails_in_seconds_and_says_where() {
    // A port nothing listens on: bound, its number taken, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret-never-shown"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let dest = s3::open_with_env("s3://silo-test/p", env).unwrap();
    let err = s3::check(&dest).await.unwrap_err();
    assert!(matches!(err, BackupError::S3Unreachable { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("s3://silo-test/p at {endpoint} is unreachable")),
        "{shown}"
    );
    assert!(!format!("{shown} {err:?}").contains("secret-never-shown"));
}

/// A staging folder whose large file is a pipe the test feeds: the upload
/// reads what the test wrote and then waits, so the test knows it is in
/// the middle of the upload when it acts.
struct FedUpload {
    staging: tempfile::TempDir,
    meta: silo_backup::BackupMeta,
}

impl FedUpload {
    async fn new() -> Self {
        let staging = tempfile::tempdir().unwrap();
        let mut meta = stage(staging.path(), &[("schema.json", b"{}".to_vec())]).await;
        let pipe = staging.path().join("dump.pgc");
        let status = std::process::Command::new("mkfifo")
            .arg(&pipe)
            .status()
            .unwrap();
        assert!(status.success());
        meta.files.push(FileEntry {
            name: "dump.pgc".into(),
            size: 0,
            sha256: String::new(),
        });
        meta = meta_for(meta.files);
        FedUpload { staging, meta }
    }

    /// Feeds `first` bytes now, waits for `go`, then feeds `rest`; write
    /// errors (the reader gave up) end it.
    fn feed(
        &self,
        first: usize,
        rest: usize,
        go: std::sync::mpsc::Receiver<()>,
    ) -> std::thread::JoinHandle<()> {
        let pipe = self.staging.path().join("dump.pgc");
        std::thread::spawn(move || {
            let mut w = std::fs::OpenOptions::new().write(true).open(pipe).unwrap();
            if w.write_all(&noise(first, 3)).is_err() {
                return;
            }
            if go.recv().is_err() {
                return;
            }
            let _ = w.write_all(&noise(rest, 4));
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_mid_upload_fails_the_backup_and_writes_no_meta_json() {
    let Some(mut server) = S3Server::start_or_skip(
        "killing_the_server_mid_upload_fails_the_backup_and_writes_no_meta_json",
    ) else {
        return;
    };
    let dest = open(&server, "battles");
    let upload = FedUpload::new().await;
    let (go, wait) = std::sync::mpsc::channel();
    let feeder = upload.feed(PART_SIZE * 2 + 1, PART_SIZE * 2, wait);

    let task = {
        let (store, prefix) = (dest.store.clone(), dest.prefix.clone());
        let (staging, meta) = (upload.staging.path().to_owned(), upload.meta.clone());
        tokio::spawn(
            async move { objects::put_backup(store.as_ref(), &prefix, &staging, &meta).await },
        )
    };
    assert!(
        server.wait_for_request("partNumber=", Duration::from_secs(60)),
        "no part was uploaded: {}",
        server.log()
    );
    server.stop();
    go.send(()).unwrap();

    let err = tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("a dead server fails the upload within the retry bound")
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, BackupError::S3Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("s3://silo-test is unreachable"),
        "{err}"
    );
    let log = server.log();
    assert!(
        !log.contains("meta.json"),
        "meta.json was never sent: {log}"
    );
    feeder.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_killed_half_way_leaves_no_backup_and_the_next_one_succeeds() {
    let Some(server) = S3Server::start_or_skip(
        "an_upload_killed_half_way_leaves_no_backup_and_the_next_one_succeeds",
    ) else {
        return;
    };
    let dest = open(&server, "battles");
    let upload = FedUpload::new().await;
    let (go, wait) = std::sync::mpsc::channel();
    let feeder = upload.feed(PART_SIZE * 2 + 1, PART_SIZE, wait);
    let task = {
        let (store, prefix) = (dest.store.clone(), dest.prefix.clone());
        let (staging, meta) = (upload.staging.path().to_owned(), upload.meta.clone());
        tokio::spawn(
            async move { objects::put_backup(store.as_ref(), &prefix, &staging, &meta).await },
        )
    };
    assert!(
        server.wait_for_request("partNumber=", Duration::from_secs(60)),
        "no part was uploaded: {}",
        server.log()
    );
    // The process taking the backup dies: its future is dropped where it is.
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    drop(go);
    feeder.join().unwrap();

    let listed = objects::list_backups(dest.store.as_ref(), &dest.prefix)
        .await
        .unwrap();
    assert!(
        listed.iter().all(|l| !l.has_meta),
        "a killed upload is never a backup: {listed:?}"
    );
    assert!(
        listed.iter().any(|l| l.id == upload.meta.id),
        "its leftovers are listed for prune: {listed:?}"
    );

    let staging = tempfile::tempdir().unwrap();
    let next = stage(staging.path(), &[("dump.pgc", noise(1000, 9))]).await;
    objects::put_backup(dest.store.as_ref(), &dest.prefix, staging.path(), &next)
        .await
        .unwrap();
    let listed = objects::list_backups(dest.store.as_ref(), &dest.prefix)
        .await
        .unwrap();
    let complete: Vec<_> = listed
        .iter()
        .filter(|l| l.has_meta)
        .map(|l| &l.id)
        .collect();
    assert_eq!(complete, vec![&next.id]);

    objects::delete_backup(dest.store.as_ref(), &dest.prefix, &upload.meta.id)
        .await
        .unwrap();
    assert_eq!(
        objects::list_backups(dest.store.as_ref(), &dest.prefix)
            .await
            .unwrap()
            .len(),
        1
    );
}
