//! Rules for the names a manifest may use.
//!
//! Service, database and role names end up as PostgreSQL identifiers and as
//! folder names. Requiring valid *unquoted* identifiers means a user can type
//! every name silo creates into `psql` without quoting, and the same name
//! works on every engine and file system.

/// PostgreSQL's longest identifier (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// PostgreSQL's fully reserved key words (including those that may only be
/// used as function or type names). An unquoted identifier cannot be one.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// Why a name is not a valid identifier, phrased to complete
/// "invalid <kind> name `x`: ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong(usize),
    BadStart,
    BadCharacter(char),
    Reserved,
    SystemPrefix,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameProblem::Empty => write!(f, "it is empty"),
            NameProblem::TooLong(n) => write!(
                f,
                "it is {n} bytes long; PostgreSQL identifiers hold at most {MAX_IDENTIFIER_BYTES}"
            ),
            NameProblem::BadStart => write!(f, "it must start with a lowercase letter"),
            NameProblem::BadCharacter(c) => write!(
                f,
                "it contains {c:?}; only lowercase letters, digits and `_` are allowed"
            ),
            NameProblem::Reserved => write!(f, "it is a reserved word in PostgreSQL"),
            NameProblem::SystemPrefix => {
                write!(f, "names starting with `pg_` are reserved by PostgreSQL")
            }
        }
    }
}

/// Checks that `name` is a lower snake_case, unquoted PostgreSQL identifier.
pub fn check_identifier(name: &str) -> Result<(), NameProblem> {
    let first = name.chars().next().ok_or(NameProblem::Empty)?;
    if name.len() > MAX_IDENTIFIER_BYTES {
        return Err(NameProblem::TooLong(name.len()));
    }
    if !first.is_ascii_lowercase() {
        return Err(NameProblem::BadStart);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(NameProblem::BadCharacter(c));
    }
    if RESERVED.binary_search(&name).is_ok() {
        return Err(NameProblem::Reserved);
    }
    if name.starts_with("pg_") {
        return Err(NameProblem::SystemPrefix);
    }
    Ok(())
}

/// Turns an arbitrary string into a name that passes [`check_identifier`],
/// or `None` when nothing usable is left. Used to suggest a fix.
pub fn suggest_identifier(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
            prev_lower = false;
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 's');
        out.insert(1, '_');
    }
    if check_identifier(&out) == Err(NameProblem::Reserved) {
        out.push_str("_svc");
    }
    out.truncate(MAX_IDENTIFIER_BYTES);
    check_identifier(&out).ok().map(|()| out)
}

/// Checks an event type: dot-separated lowercase segments, at least two
/// (`killmail.enriched`, `battle.created.v2`).
pub fn check_event_type(name: &str) -> Result<(), String> {
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 2 {
        return Err(
            "event types have at least two dot-separated parts, like `battle.created`".into(),
        );
    }
    for segment in segments {
        let mut chars = segment.chars();
        match chars.next() {
            None => return Err("it has an empty part between dots".into()),
            Some(c) if !c.is_ascii_lowercase() => {
                return Err(format!(
                    "part `{segment}` must start with a lowercase letter"
                ));
            }
            _ => {}
        }
        if let Some(c) =
            chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(format!(
                "part `{segment}` contains {c:?}; only lowercase letters, digits and `_` are allowed"
            ));
        }
    }
    Ok(())
}

/// Checks an environment variable name (`[A-Z_][A-Z0-9_]*`).
pub fn check_env_var(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Err("it is empty".into()),
        Some(c) if !(c.is_ascii_uppercase() || c == '_') => {
            return Err("it must start with an uppercase letter or `_`".into());
        }
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')) {
        return Err(format!(
            "it contains {c:?}; only uppercase letters, digits and `_` are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reserved_list_is_sorted_for_binary_search() {
        let mut sorted = RESERVED.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, RESERVED);
    }

    #[test]
    fn accepts_snake_case() {
        assert_eq!(check_identifier("battles_db"), Ok(()));
        assert_eq!(check_identifier("a1"), Ok(()));
    }

    #[test]
    fn rejects_each_problem() {
        assert_eq!(check_identifier(""), Err(NameProblem::Empty));
        assert_eq!(check_identifier("1abc"), Err(NameProblem::BadStart));
        assert_eq!(check_identifier("_abc"), Err(NameProblem::BadStart));
        assert_eq!(check_identifier("Users"), Err(NameProblem::BadStart));
        assert_eq!(
            check_identifier("my-svc"),
            Err(NameProblem::BadCharacter('-'))
        );
        assert_eq!(check_identifier("user"), Err(NameProblem::Reserved));
        assert_eq!(check_identifier("pg_app"), Err(NameProblem::SystemPrefix));
        assert_eq!(
            check_identifier(&"a".repeat(64)),
            Err(NameProblem::TooLong(64))
        );
        assert_eq!(check_identifier(&"a".repeat(63)), Ok(()));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest_identifier("UserPreferences").as_deref(),
            Some("user_preferences")
        );
        assert_eq!(
            suggest_identifier("auth-service").as_deref(),
            Some("auth_service")
        );
        assert_eq!(suggest_identifier("user").as_deref(), Some("user_svc"));
        assert_eq!(suggest_identifier("9lives").as_deref(), Some("s_9lives"));
        assert_eq!(suggest_identifier("---"), None);
    }

    #[test]
    fn event_types() {
        assert!(check_event_type("battle.created").is_ok());
        assert!(check_event_type("battle.created.v2").is_ok());
        assert!(check_event_type("battle").is_err());
        assert!(check_event_type("battle..created").is_err());
        assert!(check_event_type("Battle.created").is_err());
        assert!(check_event_type("battle.created-now").is_err());
    }

    #[test]
    fn env_vars() {
        assert!(check_env_var("BATTLES_PG_URL").is_ok());
        assert!(check_env_var("battles").is_err());
        assert!(check_env_var("9X").is_err());
        assert!(check_env_var("A-B").is_err());
    }

    proptest! {
        // Anything check_identifier accepts is a name PostgreSQL takes unquoted:
        // lowercase ASCII, bounded length, not reserved.
        #[test]
        fn accepted_names_are_plain(name in "\\PC{0,80}") {
            if check_identifier(&name).is_ok() {
                prop_assert!(name.len() <= MAX_IDENTIFIER_BYTES);
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
                prop_assert!(!RESERVED.contains(&name.as_str()));
            }
        }

        // A suggestion, when there is one, always passes the check.
        #[test]
        fn suggestions_are_valid(name in "\\PC{0,80}") {
            if let Some(s) = suggest_identifier(&name) {
                prop_assert_eq!(check_identifier(&s), Ok(()));
            }
        }
    }
}
