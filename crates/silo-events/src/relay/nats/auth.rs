//! Isolation on the bus: one NATS user per service, allowed to publish
//! only its own event types and to read only its own durable consumers.
//!
//! [`authorization_block`] generates each user's password the first time
//! (32 random bytes, kept in `<data_dir>/secrets/nats/<user>.env`, mode
//! 0600, like a service's database credentials) and writes a nats-server
//! `authorization { users = [...] }` block holding only bcrypt hashes of
//! them, so the block itself is no secret. The hashes' salts are derived
//! from the passwords, so the same credentials always give the same block.
//!
//! On nats-server 2.9 a user allowed to create consumers could create one
//! over any subject and read every event. So services may not create
//! consumers: the silo admin ([`names::ADMIN_USER`]) creates the stream
//! and every service's durable consumers (`silo events nats-config
//! --apply`, or `silo events run` for every service), and each service
//! may only pull from, look at and acknowledge its own durables. Replies
//! reach a user only under its own inbox prefix.
//!
//! The storage gateway over NATS (`silo gateway --nats`) rests on the same
//! users: every service's user may send requests on
//! `<project>_db.<service>.>` and on no other service's, so the gateway
//! takes the subject's service as the caller; the gateway's own user
//! ([`names::GATEWAY_USER`]) may receive those requests and publish
//! nothing but replies to them.

use silo_manifest::{Manifest, Service};
use silo_store::{SecretsDir, secrets_layout};

use super::error::NatsError;
use super::names;

/// bcrypt's cost for the hashes in the block: what `nats server passwd`
/// uses.
const BCRYPT_COST: u32 = 11;

/// What a user may do on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe: Vec<String>,
    /// Whether it may publish a reply to a request it received
    /// (nats-server's `allow_responses`).
    pub allow_responses: bool,
}

/// The permissions of `service`'s user: publish its own types; pull from,
/// look at and acknowledge its own durables; look at the stream (those
/// when it publishes or consumes); send requests to the gateway as itself;
/// receive replies under its own inbox prefix.
pub fn permissions(manifest: &Manifest, service: &Service) -> Permissions {
    let stream = names::stream_name(&manifest.project);
    let mut publish: Vec<String> = service
        .publishes
        .iter()
        .map(|t| names::subject(&manifest.project, t))
        .collect();
    for t in &service.consumes {
        let durable = names::durable(&service.name, t);
        publish.push(format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"));
        publish.push(format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"));
        publish.push(format!("$JS.ACK.{stream}.{durable}.>"));
    }
    if crate::needs_tables(service) {
        publish.push(format!("$JS.API.STREAM.INFO.{stream}"));
    }
    publish.push(format!(
        "{}.{}.>",
        names::gateway_prefix(&manifest.project),
        service.name
    ));
    Permissions {
        publish,
        subscribe: vec![format!("{}.>", names::inbox_prefix(&service.name))],
        allow_responses: false,
    }
}

/// The permissions of the gateway's user: receive every service's
/// requests and answer them; publish nothing else (`allow_responses`
/// denies every other subject when no publish list is given).
pub fn gateway_permissions(manifest: &Manifest) -> Permissions {
    Permissions {
        publish: Vec::new(),
        subscribe: vec![
            names::gateway_subjects(&manifest.project),
            format!("{}.>", names::inbox_prefix(names::GATEWAY_USER)),
        ],
        allow_responses: true,
    }
}

/// The permissions of the silo admin: the JetStream API (the stream, the
/// consumers, replay's reading consumer) and acknowledging on the
/// project's stream; it publishes no events.
pub fn admin_permissions(manifest: &Manifest) -> Permissions {
    let stream = names::stream_name(&manifest.project);
    Permissions {
        publish: vec!["$JS.API.>".into(), format!("$JS.ACK.{stream}.>")],
        subscribe: vec![format!("{}.>", names::inbox_prefix(names::ADMIN_USER))],
        allow_responses: false,
    }
}

/// The users of the block: the admin, the gateway, then every service in
/// manifest order (one without events still calls the gateway).
pub fn users(manifest: &Manifest) -> Vec<(String, Permissions)> {
    let mut out = vec![
        (names::ADMIN_USER.to_string(), admin_permissions(manifest)),
        (
            names::GATEWAY_USER.to_string(),
            gateway_permissions(manifest),
        ),
    ];
    out.extend(
        manifest
            .services
            .iter()
            .map(|s| (s.name.clone(), permissions(manifest, s))),
    );
    out
}

/// A written authorization block.
#[derive(Debug, Clone)]
pub struct AuthBlock {
    /// The block, for nats-server's configuration.
    pub text: String,
    /// Every user in it.
    pub users: Vec<String>,
    /// The users whose credentials were generated by this call.
    pub generated: Vec<String>,
}

/// The authorization block of `manifest`'s project, generating the
/// credentials of users that have none yet (kept in the data dir's
/// `secrets/nats/`). Running it again changes nothing.
pub fn authorization_block(manifest: &Manifest) -> Result<AuthBlock, NatsError> {
    let secrets = SecretsDir::new(&manifest.data_dir);
    let mut generated = Vec::new();
    let mut entries = Vec::new();
    let mut names = Vec::new();
    for (user, perms) in users(manifest) {
        let password = match read_password(&secrets, &user)? {
            Some(p) => p,
            None => {
                let p = silo_store::Secret::generate();
                secrets.write_nats(&user, &credentials_file(&user, &p))?;
                generated.push(user.clone());
                p
            }
        };
        entries.push(entry(&user, &hash(&user, &password), &perms));
        names.push(user);
    }
    let text = format!(
        "# nats-server authorization for the silo project {project:?}, written by\n\
         # `silo events nats-config`: one user per service, allowed to publish only\n\
         # its own event types and to read only its own durable consumers, and the\n\
         # silo admin, which creates the stream {stream:?} and the consumers.\n\
         # Passwords are bcrypt hashes; the passwords are in the data dir's\n\
         # secrets/nats/<user>.env. Include this file in the server's configuration\n\
         # (`include silo-auth.conf`) and run the server with JetStream (`-js`).\n\
         authorization {{\n  users = [\n{}  ]\n}}\n",
        entries.concat(),
        project = manifest.project,
        stream = names::stream_name(&manifest.project),
    );
    Ok(AuthBlock {
        text,
        users: names,
        generated,
    })
}

/// One user of the block.
fn entry(user: &str, hash: &str, perms: &Permissions) -> String {
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // No publish list at all when empty: `allow_responses` alone denies
    // every subject but the replies.
    let publish = if perms.publish.is_empty() {
        String::new()
    } else {
        format!("        publish: {{ allow: [{}] }}\n", list(&perms.publish))
    };
    let responses = if perms.allow_responses {
        "        allow_responses: true\n"
    } else {
        ""
    };
    format!(
        "    {{\n      user: {user:?}\n      password: {hash:?}\n      permissions: {{\n{publish}        subscribe: {{ allow: [{}] }}\n{responses}      }}\n    }}\n",
        list(&perms.subscribe),
    )
}

/// The bcrypt hash nats-server checks the password against (`$2a$`, the
/// prefix every nats-server version reads), salted with bytes derived
/// from the user and the password so that it is the same on every run.
fn hash(user: &str, password: &silo_store::Secret) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"silo nats-config bcrypt salt\0")
        .chain_update(user.as_bytes())
        .chain_update(b"\0")
        .chain_update(password.expose().as_bytes())
        .finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    bcrypt::hash_with_salt(password.expose(), BCRYPT_COST, salt)
        .expect("a cost within bcrypt's range and a short password")
        .format_for_version(bcrypt::Version::TwoA)
}

/// The text of a user's credentials file.
fn credentials_file(user: &str, password: &silo_store::Secret) -> String {
    format!(
        "{}={user}\n{}={}\n",
        secrets_layout::NATS_USER,
        secrets_layout::NATS_PASSWORD,
        password.expose()
    )
}

/// Reads `user`'s password from its credentials file; `None` when there
/// is no file.
pub fn read_password(
    secrets: &SecretsDir,
    user: &str,
) -> Result<Option<silo_store::Secret>, NatsError> {
    let path = secrets.nats_path(user);
    let Some(text) = secrets.read_nats(user)? else {
        return Ok(None);
    };
    let var = |name: &str| {
        let prefix = format!("{name}=");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .map(str::to_string)
    };
    if var(secrets_layout::NATS_USER).as_deref() != Some(user) {
        return Err(NatsError::BadCredentials {
            path,
            reason: format!("{} is not {user}", secrets_layout::NATS_USER),
        });
    }
    match var(secrets_layout::NATS_PASSWORD) {
        Some(p) if !p.is_empty() => Ok(Some(silo_store::Secret::new(p))),
        _ => Err(NatsError::BadCredentials {
            path,
            reason: format!("it has no {}", secrets_layout::NATS_PASSWORD),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silo_manifest::Overrides;

    fn manifest(dir: &std::path::Path) -> Manifest {
        let text = "[project]\nname = \"shop\"\n\
            [services.orders]\npublishes = [\"order.placed\"]\n\
            [services.billing]\nconsumes = [\"order.placed\"]\npublishes = [\"invoice.sent\"]\n\
            [services.idle]\n";
        Manifest::from_str(text, &dir.join("silo.toml"), &Overrides::default()).unwrap()
    }

    #[test]
    fn each_service_publishes_its_own_types_and_reads_its_own_durables() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path());
        let billing = m.service("billing").unwrap();
        let p = permissions(&m, billing);
        assert_eq!(
            p.publish,
            vec![
                "shop.invoice.sent",
                "$JS.API.CONSUMER.MSG.NEXT.shop.billing-order-placed",
                "$JS.API.CONSUMER.INFO.shop.billing-order-placed",
                "$JS.ACK.shop.billing-order-placed.>",
                "$JS.API.STREAM.INFO.shop",
                "shop_db.billing.>",
            ]
        );
        assert_eq!(p.subscribe, vec!["_INBOX.billing.>"]);
        assert!(!p.allow_responses);
        let names: Vec<String> = users(&m).into_iter().map(|u| u.0).collect();
        assert_eq!(
            names,
            vec!["silo-admin", "silo-gateway", "orders", "billing", "idle"]
        );
    }

    #[test]
    fn a_service_calls_the_gateway_as_itself_and_the_gateway_only_answers() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path());
        let idle = permissions(&m, m.service("idle").unwrap());
        assert_eq!(idle.publish, vec!["shop_db.idle.>"]);
        let gw = gateway_permissions(&m);
        assert!(gw.publish.is_empty());
        assert!(gw.allow_responses);
        assert_eq!(gw.subscribe, vec!["shop_db.>", "_INBOX.silo-gateway.>"]);
        let text = entry("silo-gateway", "h", &gw);
        assert!(!text.contains("publish"), "{text}");
        assert!(text.contains("allow_responses: true"), "{text}");
    }

    #[test]
    fn the_block_is_the_same_on_every_run_and_holds_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let m = manifest(dir.path());
        let first = authorization_block(&m).unwrap();
        assert_eq!(
            first.generated,
            vec!["silo-admin", "silo-gateway", "orders", "billing", "idle"]
        );
        let second = authorization_block(&m).unwrap();
        assert!(second.generated.is_empty());
        assert_eq!(first.text, second.text);
        let secrets = SecretsDir::new(&m.data_dir);
        for user in &first.users {
            let password = read_password(&secrets, user).unwrap().unwrap();
            assert_eq!(password.expose().len(), 43);
            assert!(!first.text.contains(password.expose()));
            let hash = hash(user, &password);
            assert!(first.text.contains(&hash));
            assert!(bcrypt::verify(password.expose(), &hash).unwrap());
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secrets.nats_path(user))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{user}");
        }
        assert!(first.text.starts_with("# nats-server authorization"));
        assert!(first.text.contains("user: \"orders\""));
        assert!(first.text.contains("user: \"idle\""));
    }
}
