//! S3-compatible destinations: `s3://bucket/prefix` turned into an
//! object store and a prefix, with credentials and endpoint from the
//! environment (the variables every AWS tool reads).
//!
//! - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`:
//!   the credentials; or `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`
//!   (Kubernetes), or the container credential variables (ECS, EKS).
//! - `AWS_REGION` (or `AWS_DEFAULT_REGION`), default `us-east-1`.
//! - `AWS_ENDPOINT_URL`: an S3-compatible server (MinIO, Ceph, Garage,
//!   R2...); `AWS_ALLOW_HTTP=true` when it is plain http.
//! - every other `AWS_*` setting object_store's S3 builder knows
//!   (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_SKIP_SIGNATURE`, ...).
//!
//! Without any credentials silo refuses rather than fall back to the EC2
//! instance metadata service, which off EC2 only times out; on EC2,
//! setting `AWS_METADATA_ENDPOINT` opts into it.
//!
//! The objects themselves are read and written by [`crate::objects`], the
//! same code as for local folders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::BackupError;
use crate::objects::classify;

/// The scheme of S3 destinations.
pub const SCHEME: &str = "s3";

/// The parts of an `s3://bucket/prefix` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    /// The folder inside the bucket; empty for the bucket's root.
    pub prefix: Path,
}

impl S3Url {
    /// Reads `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash
    /// is allowed).
    pub fn parse(url: &str) -> Result<Self, BackupError> {
        let bad = |reason: &str| BackupError::BadDestination {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("an S3 destination starts with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("it names no bucket (s3://BUCKET/prefix)"));
        }
        // S3's bucket naming rules, so a typo fails here, not at the server.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !valid_bucket {
            return Err(bad(&format!(
                "{bucket:?} is not a bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)"
            )));
        }
        if url.contains(['?', '#']) {
            return Err(bad(
                "it has a query or fragment; settings come from AWS_* variables",
            ));
        }
        let prefix = Path::parse(prefix.trim_end_matches('/')).map_err(|e| {
            bad(&format!(
                "its prefix {prefix:?} is not a valid object path: {e}"
            ))
        })?;
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.as_ref().is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// An opened S3 destination: the store for its bucket and the prefix its
/// backups live under.
#[derive(Debug, Clone)]
pub struct S3Destination {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    pub url: S3Url,
    /// The endpoint requests go to, for messages (no credentials in it).
    pub endpoint: String,
}

impl S3Destination {
    /// `s3://bucket/prefix at https://endpoint`, for messages.
    pub fn describe(&self) -> String {
        format!("{} at {}", self.url, self.endpoint)
    }
}

/// Opens `url` with the process's environment. Nothing is sent yet; use
/// [`check`] to find out early whether the bucket is there and the
/// credentials work.
pub fn open(url: &str) -> Result<S3Destination, BackupError> {
    open_with_env(url, std::env::vars())
}

/// Opens `url` with `env` in place of the process's environment (only its
/// `AWS_*` variables are read).
pub fn open_with_env(
    url: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<S3Destination, BackupError> {
    let parsed = S3Url::parse(url)?;
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, v)| k.starts_with("AWS_") && !v.is_empty())
        .collect();
    require_credentials(&parsed, &env)?;

    let mut builder = AmazonS3Builder::new()
        .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(10)))
        .with_retry(retry());
    for (key, value) in &env {
        if let Ok(key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
            builder = builder.with_config(key, value);
        }
    }
    builder = builder.with_bucket_name(&parsed.bucket);
    let endpoint = endpoint_for_messages(&env);
    let store = builder.build().map_err(|e| BackupError::BadDestination {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    Ok(S3Destination {
        store: Arc::new(store),
        prefix: parsed.prefix.clone(),
        url: parsed,
        endpoint,
    })
}

/// Lists the destination's prefix once: an error now says what is wrong
/// (no bucket, refused credentials, no answer) before a backup is taken.
pub async fn check(destination: &S3Destination) -> Result<(), BackupError> {
    destination
        .store
        .list_with_delimiter(Some(&destination.prefix))
        .await
        .map(|_| ())
        .map_err(|e| {
            match classify(
                destination.store.as_ref(),
                "listing",
                &destination.prefix,
                e,
            ) {
                // Say where, now that we know more than the bucket's name.
                BackupError::S3BucketMissing { .. } => BackupError::S3BucketMissing {
                    destination: destination.describe(),
                },
                BackupError::S3Denied { reason, .. } => BackupError::S3Denied {
                    destination: destination.describe(),
                    reason,
                },
                BackupError::S3Unreachable { reason, .. } => BackupError::S3Unreachable {
                    destination: destination.describe(),
                    reason,
                },
                other => other,
            }
        })
}

/// Retries are few and short: a backup that cannot reach its destination
/// should fail in seconds and say so, not retry for object_store's default
/// three minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

/// Refuses an environment with no way to get credentials (see the module
/// documentation), and one with half a key pair.
fn require_credentials(url: &S3Url, env: &BTreeMap<String, String>) -> Result<(), BackupError> {
    let has = |k: &str| env.contains_key(k);
    let missing = |what: &str| BackupError::S3NoCredentials {
        url: url.to_string(),
        missing: what.to_string(),
    };
    match (has("AWS_ACCESS_KEY_ID"), has("AWS_SECRET_ACCESS_KEY")) {
        (true, true) => return Ok(()),
        (true, false) => {
            return Err(missing(
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            ));
        }
        (false, true) => {
            return Err(missing(
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            ));
        }
        (false, false) => {}
    }
    let other_source = (has("AWS_WEB_IDENTITY_TOKEN_FILE") && has("AWS_ROLE_ARN"))
        || has("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || (has("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            && has("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
        || has("AWS_METADATA_ENDPOINT")
        || env
            .get("AWS_SKIP_SIGNATURE")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if other_source {
        Ok(())
    } else {
        Err(missing(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set",
        ))
    }
}

/// The endpoint as the user set it (without any user or password in it),
/// or AWS's for the region.
fn endpoint_for_messages(env: &BTreeMap<String, String>) -> String {
    let set = env
        .get("AWS_ENDPOINT_URL")
        .or_else(|| env.get("AWS_ENDPOINT"));
    match set {
        Some(raw) => match url::Url::parse(raw) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string().trim_end_matches('/').to_string()
            }
            Err(_) => "the endpoint in AWS_ENDPOINT_URL".to_string(),
        },
        None => {
            let region = env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .map_or("us-east-1", String::as_str);
            format!("https://s3.{region}.amazonaws.com")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let u = S3Url::parse("s3://silo-backups/battlescope/battles/").unwrap();
        assert_eq!(u.bucket, "silo-backups");
        assert_eq!(u.prefix.as_ref(), "battlescope/battles");
        assert_eq!(u.to_string(), "s3://silo-backups/battlescope/battles");
        let root = S3Url::parse("s3://silo-backups").unwrap();
        assert_eq!(root.prefix.as_ref(), "");
        assert_eq!(root.to_string(), "s3://silo-backups");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("file:///x", "starts with s3://"),
            ("s3:///prefix", "names no bucket"),
            ("s3://Bad_Bucket/x", "not a bucket name"),
            ("s3://ok-bucket/a//b", "not a valid object path"),
            ("s3://ok-bucket/x?region=eu", "query"),
        ] {
            let err = S3Url::parse(url).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn no_credentials_is_refused_before_anything_is_sent() {
        let err =
            open_with_env("s3://silo-backups/x", env(&[("AWS_REGION", "eu-west-1")])).unwrap_err();
        assert!(matches!(err, BackupError::S3NoCredentials { .. }), "{err}");
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");

        let err = open_with_env(
            "s3://silo-backups/x",
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", ""),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("AWS_SECRET_ACCESS_KEY is not"),
            "{err}"
        );
    }

    #[test]
    fn the_endpoint_in_messages_has_no_password() {
        let d = open_with_env(
            "s3://silo-backups/x",
            env(&[
                ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "hunter2"),
                ("AWS_ENDPOINT_URL", "http://user:pw@127.0.0.1:9000"),
                ("AWS_ALLOW_HTTP", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(d.endpoint, "http://127.0.0.1:9000");
        assert_eq!(d.describe(), "s3://silo-backups/x at http://127.0.0.1:9000");
        let debug = format!("{d:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
