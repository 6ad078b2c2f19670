//! Finding other services' stores and literal secrets in one line of
//! source. One Aho-Corasick pass finds candidates; each is then judged by
//! its surroundings, so that a word which merely contains a name, or a
//! plain word that happens to be a database name outside any database
//! setting, is not a hit.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a needle stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A login role: a hit as a whole token when it is distinctive
    /// (contains `_` or a digit), else only as a `user`/`role` setting.
    Role,
    /// A database name: a hit only as a database setting (`dbname=`,
    /// `DB_NAME:`, `"database": ...`) or a connection URL's path.
    Database,
    /// The environment variable holding an instance's admin URL.
    UrlEnv,
    /// The variables of a secrets file (`BILLING_DB_`...).
    EnvPrefix,
    /// `secrets/<service>.env`.
    SecretsPath,
    /// `<database>.sqlite3`.
    SqliteFile,
    /// The host of an instance-isolated service's server.
    Host,
    /// A service's real password.
    Password,
    /// `postgres://` or `postgresql://`.
    Url,
    /// `password`, `passwd`, `pwd`: the key of a possible literal secret.
    SecretKey,
}

/// One string to look for, and whose it is.
#[derive(Debug, Clone)]
pub struct Needle {
    pub text: String,
    pub kind: Kind,
    /// The service it belongs to (`None` for keywords).
    pub service: Option<String>,
}

/// A hit in a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// A reference to `service`'s store.
    Reference {
        service: String,
        column: usize,
        what: String,
    },
    /// A literal secret.
    Secret { column: usize, what: String },
    /// A connection string (password included), for spotting one string
    /// shared by two services.
    ConnectionString { column: usize, url: String },
}

/// All needles, compiled once.
pub struct Matcher {
    needles: Vec<Needle>,
    automaton: AhoCorasick,
}

impl Matcher {
    pub fn new(mut needles: Vec<Needle>) -> Matcher {
        for (text, kind) in [
            ("postgres://", Kind::Url),
            ("postgresql://", Kind::Url),
            ("password", Kind::SecretKey),
            ("passwd", Kind::SecretKey),
            ("pwd", Kind::SecretKey),
        ] {
            needles.push(Needle {
                text: text.into(),
                kind,
                service: None,
            });
        }
        needles.retain(|n| !n.text.is_empty());
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(needles.iter().map(|n| n.text.as_str()))
            .expect("needles compile");
        Matcher { needles, automaton }
    }

    /// Whether `haystack` holds any candidate at all (a fast first pass
    /// over a whole file).
    pub fn any(&self, haystack: &str) -> bool {
        self.automaton.is_match(haystack)
    }

    /// The hits in `line` of a file of `service`; `previous` is the line
    /// before it (Kubernetes puts `name: DB_NAME` above `value: ...`);
    /// `config` tells whether the file is configuration (`.env`, YAML,
    /// TOML, ...), where bare values are literals.
    pub fn line(&self, line: &str, previous: &str, service: &str, config: bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        for m in self.automaton.find_overlapping_iter(line) {
            let needle = &self.needles[m.pattern().as_usize()];
            let (start, end) = (m.start(), m.end());
            let column = line[..start].chars().count() + 1;
            let other = needle.service.as_deref().filter(|s| *s != service);
            let hit = match needle.kind {
                Kind::Url => url_hit(line, start, column, &mut hits),
                Kind::SecretKey => secret_key_hit(line, start, end, column, config),
                Kind::Password => needle.service.as_ref().map(|owner| Hit::Secret {
                    column,
                    what: format!("the password of service `{owner}`"),
                }),
                _ if other.is_none() => None,
                Kind::Role => {
                    let distinctive = needle.text.contains('_')
                        || needle.text.bytes().any(|b| b.is_ascii_digit());
                    let hit = is_token(line, start, end)
                        && (distinctive
                            || setting_key(line, start).is_some_and(|k| is_user_key(&k)));
                    hit.then(|| reference(other, column, format!("role `{}`", needle.text)))
                }
                Kind::Database => (is_token(line, start, end)
                    && database_context(line, previous, start))
                .then(|| reference(other, column, format!("database `{}`", needle.text))),
                Kind::UrlEnv => is_token(line, start, end).then(|| {
                    reference(
                        other,
                        column,
                        format!("the server variable `{}`", needle.text),
                    )
                }),
                Kind::EnvPrefix => {
                    (start == 0 || !is_ident(line.as_bytes()[start - 1])).then(|| {
                        let name_end =
                            end + line[end..].bytes().take_while(|b| is_ident(*b)).count();
                        reference(
                            other,
                            column,
                            format!("its credentials variable `{}`", &line[start..name_end]),
                        )
                    })
                }
                Kind::SecretsPath | Kind::SqliteFile => (start == 0
                    || !is_ident(line.as_bytes()[start - 1]))
                .then(|| reference(other, column, format!("its file `{}`", needle.text))),
                Kind::Host => is_token(line, start, end)
                    .then(|| reference(other, column, format!("its server `{}`", needle.text))),
            };
            hits.extend(hit);
        }
        hits.dedup();
        hits
    }
}

fn reference(service: Option<&str>, column: usize, what: String) -> Hit {
    Hit::Reference {
        service: service.unwrap_or_default().to_string(),
        column,
        what,
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `line[start..end]` is a whole word: no identifier character touches it.
fn is_token(line: &str, start: usize, end: usize) -> bool {
    let bytes = line.as_bytes();
    (start == 0 || !is_ident(bytes[start - 1])) && (end == bytes.len() || !is_ident(bytes[end]))
}

/// When the value at `start` follows `key =`, `key:` or `key =>`
/// (quotes allowed), the key, lowercased with only letters and digits.
fn setting_key(line: &str, start: usize) -> Option<String> {
    let bytes = line.as_bytes();
    let mut i = start;
    let skip_back = |i: &mut usize, set: &[u8]| {
        while *i > 0 && set.contains(&bytes[*i - 1]) {
            *i -= 1;
        }
    };
    skip_back(&mut i, b" \t\"'`");
    if i == 0 {
        return None;
    }
    match bytes[i - 1] {
        b'=' | b':' => i -= 1,
        b'>' if i >= 2 && bytes[i - 2] == b'=' => i -= 2,
        _ => return None,
    }
    // `==`, `!=`, `<=`, `>=` compare; they do not set.
    if i > 0 && matches!(bytes[i - 1], b'=' | b'!' | b'<' | b'>') {
        return None;
    }
    skip_back(&mut i, b" \t\"'`:");
    let end = i;
    while i > 0 && (is_ident(bytes[i - 1]) || matches!(bytes[i - 1], b'.' | b'-')) {
        i -= 1;
    }
    let key: String = line[i..end]
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (!key.is_empty()).then_some(key)
}

fn is_database_key(key: &str) -> bool {
    [
        "database",
        "dbname",
        "databasename",
        "datname",
        "db",
        "catalog",
    ]
    .iter()
    .any(|k| key.ends_with(k))
}

fn is_user_key(key: &str) -> bool {
    ["user", "username", "role", "usename", "login"]
        .iter()
        .any(|k| key.ends_with(k))
}

/// A database name stands where a database is named: after a database
/// key, in a connection URL's path, or before `.sqlite3`/`.db`.
fn database_context(line: &str, previous: &str, start: usize) -> bool {
    match setting_key(line, start) {
        Some(key) if is_database_key(&key) => return true,
        // `- name: POSTGRES_DB` / `  value: billing`
        Some(key) if key == "value" => {
            let name = previous
                .trim()
                .trim_start_matches("- ")
                .strip_prefix("name:")
                .map(|n| n.trim().trim_matches(['"', '\'']).to_ascii_lowercase());
            if name.is_some_and(|n| is_database_key(&n.replace(['_', '-'], ""))) {
                return true;
            }
        }
        _ => {}
    }
    url_database(&line[..start])
}

/// Whether the text just before a name ends a PostgreSQL URL's authority
/// (`postgres://host:5432/`, `jdbc:postgresql://h/`,
/// `postgresql+asyncpg://u@h/`): the name is then the database. Web URLs
/// (`https://users.example.org/`, `.../docs/users/`) are not.
fn url_database(before: &str) -> bool {
    let Some(slash) = before.strip_suffix('/') else {
        return false;
    };
    let Some(sep) = slash.rfind("://") else {
        return false;
    };
    if slash[sep + 3..].contains('/') {
        return false;
    }
    let scheme_start = slash[..sep]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':')))
        .map_or(0, |i| i + 1);
    slash[scheme_start..sep]
        .to_ascii_lowercase()
        .contains("postgres")
}

/// A connection URL at `start`: recorded (the same string in two services
/// is shared credentials) unless it is a template, and a secret when it
/// carries a password. A reference is left to the needles of its parts.
fn url_hit(line: &str, start: usize, column: usize, hits: &mut Vec<Hit>) -> Option<Hit> {
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | '<' | '>'))
        .unwrap_or(rest.len());
    let text = &rest[..end];
    let (_, after_scheme) = text.split_once("://")?;
    // A template (`postgres://${USER}@${HOST}/${DB}`, `%s`, `{}`) reads
    // the same in every service and names nothing.
    let template = after_scheme.contains(['$', '{', '%']);
    let (authority, path) = match after_scheme.find(['/', '?']) {
        Some(i) => after_scheme.split_at(i),
        None => (after_scheme, ""),
    };
    let names_store = authority.contains('@') || path.len() > 1;
    if !template && names_store {
        hits.push(Hit::ConnectionString {
            column,
            url: text.to_string(),
        });
    }
    let (userinfo, _) = authority.rsplit_once('@')?;
    let password = userinfo.split_once(':')?.1;
    (!is_placeholder(password)).then(|| Hit::Secret {
        column,
        what: "a connection string with a password".into(),
    })
}

/// A literal secret set under a password key.
fn secret_key_hit(
    line: &str,
    start: usize,
    end: usize,
    column: usize,
    config: bool,
) -> Option<Hit> {
    let bytes = line.as_bytes();
    // Extend to the whole key (`DB_PASSWORD`, `spring.datasource.password`).
    let mut key_end = end;
    while key_end < bytes.len() && is_ident(bytes[key_end]) {
        key_end += 1;
    }
    let mut key_start = start;
    while key_start > 0 && (is_ident(bytes[key_start - 1]) || bytes[key_start - 1] == b'.') {
        key_start -= 1;
    }
    let key: String = line[key_start..key_end]
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if !["password", "passwd", "pwd"]
        .iter()
        .any(|k| key.ends_with(k))
    {
        return None;
    }
    let mut i = key_end;
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < bytes.len() && set.contains(&bytes[*i]) {
            *i += 1;
        }
    };
    skip(&mut i, b"\"'` \t");
    let sep = bytes.get(i)?;
    match sep {
        b'=' if bytes.get(i + 1) == Some(&b'>') => i += 2,
        b'=' if bytes.get(i + 1) != Some(&b'=') => i += 1,
        b':' if bytes.get(i + 1) == Some(&b'=') => i += 2,
        b':' => i += 1,
        _ => return None,
    }
    skip(&mut i, b" \t");
    let value = match bytes.get(i)? {
        q @ (b'"' | b'\'' | b'`') => {
            let body = &line[i + 1..];
            &body[..body.find(*q as char)?]
        }
        _ => {
            // Bare values are literals in configuration files and inside
            // libpq strings (`"host=... password=..."`).
            let libpq =
                line.contains("dbname=") || line.contains("host=") || line.contains("user=");
            if !config && !libpq {
                return None;
            }
            let body = &line[i..];
            let stop = body
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | ';' | ','))
                .unwrap_or(body.len());
            &body[..stop]
        }
    };
    let key_text = &line[key_start..key_end];
    // `Self::Password => "PASSWORD"` names the key; `ALLOW_EMPTY_PASSWORD:
    // 1` is a switch. Neither is a password.
    let label = value.eq_ignore_ascii_case(key_text)
        || ["1", "0", "yes", "no", "true", "false", "on", "off"]
            .iter()
            .any(|flag| value.eq_ignore_ascii_case(flag));
    (!label && !is_placeholder(value)).then(|| Hit::Secret {
        column,
        what: format!("a literal password under `{key_text}`"),
    })
}

/// Values that stand for a secret rather than being one.
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v.starts_with('$')
        || v.starts_with("{{")
        || v.starts_with("%(")
        || v.starts_with('%')
        || v.starts_with('<')
        || v.starts_with('{')
        || v.starts_with('[')
        || v.chars()
            .all(|c| c == '*' || c == 'x' || c == 'X' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> Matcher {
        let mut needles = Vec::new();
        for (service, db) in [
            ("billing", "billing"),
            ("orders", "orders"),
            ("users", "users"),
        ] {
            needles.push(Needle {
                text: format!("{service}_svc"),
                kind: Kind::Role,
                service: Some(service.into()),
            });
            needles.push(Needle {
                text: db.into(),
                kind: Kind::Database,
                service: Some(service.into()),
            });
            needles.push(Needle {
                text: silo_store::secrets_layout::var_prefix(service),
                kind: Kind::EnvPrefix,
                service: Some(service.into()),
            });
        }
        Matcher::new(needles)
    }

    fn references(line: &str, config: bool) -> Vec<String> {
        matcher()
            .line(line, "", "orders", config)
            .into_iter()
            .filter_map(|h| match h {
                Hit::Reference { service, .. } => Some(service),
                _ => None,
            })
            .collect()
    }

    fn secrets(line: &str, config: bool) -> usize {
        matcher()
            .line(line, "", "orders", config)
            .iter()
            .filter(|h| matches!(h, Hit::Secret { .. }))
            .count()
    }

    #[test]
    fn database_names_count_only_where_a_database_is_named() {
        assert_eq!(references("DB_NAME=billing", true), ["billing"]);
        assert_eq!(references("  database: \"billing\"", true), ["billing"]);
        assert_eq!(
            references("conn = connect(dbname='billing')", false),
            ["billing"]
        );
        assert_eq!(references("\"POSTGRES_DB\": \"users\",", true), ["users"]);
        assert_eq!(
            references("url = 'postgres://h:5432/billing'", false),
            ["billing"]
        );
        let k8s = matcher().line("    value: users", "  - name: POSTGRES_DB", "orders", true);
        assert!(matches!(&k8s[..], [Hit::Reference { service, .. }] if service == "users"));
        assert!(
            matcher()
                .line("    value: users", "  - name: TEAM", "orders", true)
                .is_empty()
        );
        // Near misses: the word in prose, a route, a longer word, a compare.
        assert!(references("# send the invoice to billing", false).is_empty());
        assert!(references("fetch('/users/' + id)", false).is_empty());
        assert!(references("billing_address = form.get('billing_address')", false).is_empty());
        assert!(references("if database == 'billing':", false).is_empty());
        assert!(references("let billings = 3;", false).is_empty());
        assert_eq!(
            references("jdbc:postgresql://db:5432/users?ssl=true", false),
            ["users"]
        );
        assert_eq!(
            references("DSN=postgresql+asyncpg://u@db/billing", true),
            ["billing"]
        );
        // Web URLs: a host, a path segment, a deeper path.
        assert!(references("see https://users.rust-lang.org/t/1", false).is_empty());
        assert!(references("[docs]: https://example.org/users/", false).is_empty());
        assert!(references("https://github.com/search?q=users", false).is_empty());
        assert!(references("postgres://db/app/users", false).is_empty());
    }

    #[test]
    fn roles_and_variables_are_whole_tokens() {
        assert_eq!(references("user: billing_svc", true), ["billing"]);
        assert_eq!(
            references("GRANT SELECT ON t TO billing_svc;", false),
            ["billing"]
        );
        assert_eq!(
            references("os.environ['BILLING_DB_PASSWORD']", false),
            ["billing"]
        );
        assert!(references("old_billing_svc_v1 = 1", false).is_empty());
        assert!(references("MY_BILLING_DB_HOST", false).is_empty());
        // Its own names are not references.
        assert!(references("user: orders_svc", true).is_empty());
    }

    #[test]
    fn literal_passwords() {
        assert_eq!(secrets("DB_PASSWORD=hunter2hunter2", true), 1);
        assert_eq!(secrets("  password: \"s3cret\"", false), 1);
        assert_eq!(secrets("cfg.Password = `abc`", false), 1);
        assert_eq!(secrets("\"host=db dbname=orders password=abc\"", false), 1);
        assert_eq!(secrets("postgres://orders_svc:pw@db/orders", false), 1);
        // Placeholders, lookups, comparisons, annotations.
        assert_eq!(secrets("DB_PASSWORD=${DB_PASSWORD}", true), 0);
        assert_eq!(secrets("password = os.environ['DB_PASSWORD']", false), 0);
        assert_eq!(secrets("if password == \"x\":", false), 0);
        assert_eq!(secrets("def check(password: str) -> bool:", false), 0);
        assert_eq!(secrets("postgres://orders_svc@db/orders", false), 0);
        assert_eq!(secrets("password: '{{ vault.db }}'", true), 0);
        assert_eq!(secrets("forgot_password_url = '/reset'", false), 0);
        assert_eq!(secrets("Self::Password => \"PASSWORD\",", false), 0);
        assert_eq!(secrets("MYSQL_ALLOW_EMPTY_PASSWORD: 1", true), 0);
        assert_eq!(secrets("\"password\": [", true), 0);
    }
}
