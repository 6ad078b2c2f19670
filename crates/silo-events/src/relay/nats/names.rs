//! The names silo gives things on the nats bus: the project's stream, the
//! subject of each event type, each consuming service's durable consumers
//! and each NATS user's inbox prefix. Pure functions, so the
//! authorization block and the worker can never disagree on a name.

/// The token that stands for the project on the bus: the project's name
/// with every character outside `A-Z a-z 0-9 _ -` replaced by `_`. It is
/// both the stream's name and the first token of every subject, so it must
/// be one subject token (no `.`, `*`, `>` or whitespace) and a valid
/// JetStream name.
pub fn project_token(project: &str) -> String {
    let token: String = project
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() { "_".into() } else { token }
}

/// The project's stream.
pub fn stream_name(project: &str) -> String {
    project_token(project)
}

/// The subject an event type is published on: `<project>.<type>`. Types
/// are dot-separated (`battle.created`), so the subject has several
/// tokens after the project's; `<project>.>` covers them all.
pub fn subject(project: &str, event_type: &str) -> String {
    format!("{}.{event_type}", project_token(project))
}

/// Every subject of the project: the stream's one subject filter.
pub fn all_subjects(project: &str) -> String {
    format!("{}.>", project_token(project))
}

/// The event type of a subject of the project's stream, if it is one.
pub fn type_of_subject<'s>(project: &str, subject: &'s str) -> Option<&'s str> {
    let token = project_token(project);
    subject
        .strip_prefix(token.as_str())
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|t| !t.is_empty())
}

/// The durable consumer that delivers `event_type` to `service`:
/// `<service>-<type with dots as dashes>`. Service names are snake_case
/// and type parts lowercase letters, digits and `_`, so the first `-`
/// ends the service's name and the name is unambiguous.
pub fn durable(service: &str, event_type: &str) -> String {
    format!("{service}-{}", event_type.replace('.', "-"))
}

/// The NATS user of the silo admin: creates the stream and the durable
/// consumers, and reads the stream for `silo events replay`. A service
/// name is snake_case, so it can never be this.
pub const ADMIN_USER: &str = "silo-admin";

/// The NATS user of `silo gateway --nats`: it answers every service's
/// storage requests and publishes nothing but replies. Not snake_case, so
/// no service can be named this.
pub const GATEWAY_USER: &str = "silo-gateway";

/// The first token of the gateway's subjects: `<project>_db`. Not
/// `<project>.db`: the project's stream captures `<project>.>`, and a
/// stream that captures a request stores it and answers it with a
/// publish ack, racing the gateway's reply. `<project>_db` is another
/// token, so the stream never sees a request (only a project named
/// `<project>_db` on the same server would).
pub fn gateway_prefix(project: &str) -> String {
    format!("{}_db", project_token(project))
}

/// The subject `service` sends `operation` requests to:
/// `<project>_db.<service>.<operation>`.
pub fn gateway_subject(project: &str, service: &str, operation: &str) -> String {
    format!("{}.{service}.{operation}", gateway_prefix(project))
}

/// Every gateway subject of the project: `<project>_db.>`.
pub fn gateway_subjects(project: &str) -> String {
    format!("{}.>", gateway_prefix(project))
}

/// The inbox prefix a NATS user's connections use for replies (publish
/// acks, pulled messages, API answers): `_INBOX.<user>`. Under
/// `nats_auth` each user may subscribe only below its own prefix, so no
/// service can read what the server sends another.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(stream_name("battlescope"), "battlescope");
        assert_eq!(stream_name("Battle Scope.v2"), "Battle_Scope_v2");
        assert_eq!(stream_name(""), "_");
        assert_eq!(
            subject("battlescope", "battle.created"),
            "battlescope.battle.created"
        );
        assert_eq!(all_subjects("a b"), "a_b.>");
        assert_eq!(
            type_of_subject("p", "p.killmail.enriched"),
            Some("killmail.enriched")
        );
        assert_eq!(type_of_subject("p", "q.killmail.enriched"), None);
        assert_eq!(type_of_subject("p", "p."), None);
        assert_eq!(
            durable("battles", "killmail.enriched"),
            "battles-killmail-enriched"
        );
        assert_eq!(inbox_prefix("battles"), "_INBOX.battles");
        assert_eq!(
            gateway_subject("dnd", "character", "query"),
            "dnd_db.character.query"
        );
        assert_eq!(gateway_subjects("a b"), "a_b_db.>");
        // The stream's filter never takes a gateway subject.
        assert!(!gateway_subject("p", "s", "write").starts_with("p."));
    }
}
