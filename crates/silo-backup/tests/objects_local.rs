//! The object operations on a local folder: the same code that serves S3
//! (tests/s3.rs), on object_store's local file system.

mod objects_support;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use silo_backup::meta::META_FILE;
use silo_backup::objects::{self, PART_SIZE};
use silo_backup::{BackupError, BackupId};

use objects_support::{noise, stage};

fn local(dir: &std::path::Path) -> LocalFileSystem {
    LocalFileSystem::new_with_prefix(dir).unwrap()
}

#[tokio::test]
async fn a_backup_round_trips_through_a_local_folder() {
    let dest = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let restored = tempfile::tempdir().unwrap();
    let store = local(dest.path());
    let prefix = Path::from("backups/battles");
    let dump = noise(PART_SIZE * 2 + 12345, 7);
    let meta = stage(
        staging.path(),
        &[
            ("schema.json", b"{}".to_vec()),
            ("dump.sqlite", dump.clone()),
        ],
    )
    .await;

    objects::put_backup(&store, &prefix, staging.path(), &meta)
        .await
        .unwrap();

    let listed = objects::list_backups(&store, &prefix).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, meta.id);
    assert!(listed[0].has_meta);
    assert_eq!(
        objects::read_meta(&store, &prefix, &meta.id).await.unwrap(),
        meta
    );

    let to = restored.path().join("dump.sqlite");
    let (size, sha) = objects::get_file(
        &store,
        &objects::backup_path(&prefix, &meta.id).child("dump.sqlite"),
        &to,
    )
    .await
    .unwrap();
    assert_eq!(
        (size, sha.as_str()),
        (meta.files[1].size, meta.files[1].sha256.as_str())
    );
    assert!(std::fs::read(&to).unwrap() == dump);

    assert_eq!(
        objects::delete_backup(&store, &prefix, &meta.id)
            .await
            .unwrap(),
        3
    );
    assert!(
        objects::list_backups(&store, &prefix)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn objects_without_meta_json_are_listed_as_leftovers_and_stray_folders_not_at_all() {
    let dest = tempfile::tempdir().unwrap();
    let store = local(dest.path());
    let prefix = Path::from("b");
    let leftover = BackupId::new(time::OffsetDateTime::now_utc());
    store
        .put(
            &objects::backup_path(&prefix, &leftover).child("dump.sqlite"),
            b"half".to_vec().into(),
        )
        .await
        .unwrap();
    store
        .put(
            &prefix.child("lost+found").child(META_FILE),
            b"{}".to_vec().into(),
        )
        .await
        .unwrap();

    let listed = objects::list_backups(&store, &prefix).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, leftover);
    assert!(!listed[0].has_meta);
    assert_eq!(listed[0].size_bytes, 4);
}

#[tokio::test]
async fn a_missing_object_is_named_and_leaves_no_file() {
    let dest = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let store = local(dest.path());
    let to = out.path().join("x");
    let err = objects::get_file(&store, &Path::from("b/nothing/here"), &to)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::ObjectMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("b/nothing/here"), "{err}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_file_changed_while_uploading_is_refused_and_the_backup_removed() {
    let dest = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let store = local(dest.path());
    let prefix = Path::from("b");
    let meta = stage(staging.path(), &[("dump.sqlite", b"before".to_vec())]).await;
    std::fs::write(staging.path().join("dump.sqlite"), b"after!").unwrap();

    let err = objects::put_backup(&store, &prefix, staging.path(), &meta)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("dump.sqlite"), "{err}");
    assert!(
        objects::list_backups(&store, &prefix)
            .await
            .unwrap()
            .is_empty()
    );
}
