//! age encryption of backup files: round trips for every recipient, and
//! the errors of a missing, wrong or unreadable identity, of tampered
//! ciphertext, and of bad recipients.

mod objects_support;

use std::path::{Path, PathBuf};

use age::secrecy::ExposeSecret;
use age::x25519;
use silo_backup::BackupError;
use silo_backup::crypt::{self, IDENTITY_VAR, Identities};

use objects_support::noise;

/// A new key pair: its identity file in `dir` and its public key.
fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let identity = x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "# created: for a test\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        ),
    )
    .unwrap();
    (path, identity.to_public().to_string())
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_file_encrypted_for_two_recipients_decrypts_with_either_identity() {
    let keys = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (ops_key, ops_pub) = keypair(keys.path(), "ops.txt");
    let (dr_key, dr_pub) = keypair(keys.path(), "disaster-recovery.txt");
    let plain = noise(3 << 20, 5);
    let src = work.path().join("dump.pgc");
    std::fs::write(&src, &plain).unwrap();
    let enc = work.path().join("dump.pgc.age");

    let recipients = crypt::parse_recipients(&[ops_pub, dr_pub]).unwrap();
    crypt::encrypt_file(&src, &enc, &recipients).await.unwrap();
    let sealed = std::fs::read(&enc).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !sealed
            .windows(64)
            .any(|w| w == &plain[1 << 20..(1 << 20) + 64]),
        "no plaintext in the ciphertext"
    );

    for key in [ops_key, dr_key] {
        let out = work.path().join("restored");
        let identities = Identities::from_file(&key).unwrap();
        crypt::decrypt_file(&enc, &out, &identities).await.unwrap();
        assert!(std::fs::read(&out).unwrap() == plain, "{}", key.display());
        std::fs::remove_file(&out).unwrap();
    }
}

#[tokio::test]
async fn an_encrypted_backup_without_the_identity_names_the_variable() {
    let err = Identities::from_var(None, "20261128T010203Z-9f3a").unwrap_err();
    assert!(matches!(err, BackupError::IdentityNotSet { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("backup 20261128T010203Z-9f3a is encrypted and {IDENTITY_VAR} is not set")
    );
    // Set but empty is the same as unset.
    let err = Identities::from_var(Some(PathBuf::new()), "x").unwrap_err();
    assert!(err.to_string().contains(IDENTITY_VAR), "{err}");
    assert_eq!(IDENTITY_VAR, "SILO_BACKUP_IDENTITY_FILE");
}

#[tokio::test]
async fn a_wrong_identity_is_refused_and_leaves_no_output() {
    let keys = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_, right_pub) = keypair(keys.path(), "right.txt");
    let (wrong_key, _) = keypair(keys.path(), "wrong.txt");
    let src = work.path().join("f");
    std::fs::write(&src, b"rows").unwrap();
    let enc = work.path().join("f.age");
    let recipients = crypt::parse_recipients(&[right_pub]).unwrap();
    crypt::encrypt_file(&src, &enc, &recipients).await.unwrap();

    let identities = Identities::from_file(&wrong_key).unwrap();
    let err = crypt::decrypt_file(&enc, &work.path().join("out"), &identities)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BackupError::NoMatchingIdentity { .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("no identity matches"), "{shown}");
    assert!(
        shown.contains("f.age") && shown.contains("wrong.txt"),
        "{shown}"
    );
    assert_eq!(names(work.path()), ["f", "f.age"]);
}

#[tokio::test]
async fn tampered_or_truncated_ciphertext_is_refused_and_leaves_no_plaintext() {
    let keys = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (key, public) = keypair(keys.path(), "k.txt");
    let src = work.path().join("dump");
    std::fs::write(&src, noise(300_000, 8)).unwrap();
    let enc = work.path().join("dump.age");
    crypt::encrypt_file(&src, &enc, &crypt::parse_recipients(&[public]).unwrap())
        .await
        .unwrap();
    let sealed = std::fs::read(&enc).unwrap();
    let identities = Identities::from_file(&key).unwrap();
    let out = work.path().join("out");

    // One flipped bit in the last chunk: the first four decrypt fine, the
    // fifth fails its tag, and the partial output is removed.
    let mut flipped = sealed.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x01;
    std::fs::write(&enc, &flipped).unwrap();
    let err = crypt::decrypt_file(&enc, &out, &identities)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Decrypt { .. }), "{err:?}");
    assert!(err.to_string().contains("changed or cut short"), "{err}");
    assert_eq!(names(work.path()), ["dump", "dump.age"]);

    // Cut short at a chunk boundary: still refused.
    std::fs::write(&enc, &sealed[..sealed.len() - 1000]).unwrap();
    let err = crypt::decrypt_file(&enc, &out, &identities)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Decrypt { .. }), "{err:?}");
    assert_eq!(names(work.path()), ["dump", "dump.age"]);

    // Not an age file at all.
    std::fs::write(&enc, b"PGDMP plain dump").unwrap();
    let err = crypt::decrypt_file(&enc, &out, &identities)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not an age file"), "{err}");

    // The untouched file still decrypts: the failures were the damage.
    std::fs::write(&enc, &sealed).unwrap();
    crypt::decrypt_file(&enc, &out, &identities).await.unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&src).unwrap());
}

#[test]
fn bad_recipients_are_named_by_position_and_a_private_key_is_never_echoed() {
    let good = x25519::Identity::generate().to_public().to_string();
    let err = crypt::parse_recipients(&[good.clone(), "age1notakey".into()]).unwrap_err();
    assert!(
        matches!(err, BackupError::BadRecipient { position: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"age1notakey\""), "{err}");

    let err = crypt::parse_recipients(&["ssh-ed25519 AAAA".to_string()]).unwrap_err();
    assert!(
        err.to_string().contains("does not start with age1"),
        "{err}"
    );

    let secret = x25519::Identity::generate()
        .to_string()
        .expose_secret()
        .to_string();
    let err = crypt::parse_recipients(&[good, secret.clone()]).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        shown.contains("#2") && shown.contains("private key"),
        "{shown}"
    );
    assert!(
        !shown.contains(&secret["AGE-SECRET-KEY-1".len()..]),
        "{shown}"
    );

    let none: [&str; 0] = [];
    assert!(matches!(
        crypt::parse_recipients(&none).unwrap_err(),
        BackupError::NoRecipients
    ));
}

#[test]
fn an_identity_file_with_a_bad_line_is_named_by_line_not_content() {
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("key.txt");
    std::fs::write(&path, "# a comment\nAGE-SECRET-KEY-1TYPOED-SECRET\n").unwrap();
    let err = Identities::from_file(&path).unwrap_err();
    let shown = err.to_string();
    assert!(matches!(err, BackupError::BadIdentity { .. }), "{err:?}");
    assert!(
        shown.contains("line 2") && shown.contains("key.txt"),
        "{shown}"
    );
    assert!(!shown.contains("TYPOED"), "{shown}");

    let err = Identities::from_file(&keys.path().join("absent.txt")).unwrap_err();
    assert!(err.to_string().contains("absent.txt"), "{err}");

    std::fs::write(&path, "# only comments\n").unwrap();
    let err = Identities::from_file(&path).unwrap_err();
    assert!(err.to_string().contains("holds no identity"), "{err}");
}
