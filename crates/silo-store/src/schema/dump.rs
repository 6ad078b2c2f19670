//! The text dump of a schema (`silo schema dump`): one object per line,
//! grouped by kind, each table followed by its columns. The same short
//! descriptions of objects are used by the diff, so a dump line and a diff
//! line about one object read alike.

use std::fmt;

use sha2::{Digest, Sha256};

use super::model::{Column, EnumType, Extension, Function, Schema, Sequence};

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in &self.schemas {
            writeln!(f, "schema {name}")?;
        }
        for x in &self.extensions {
            writeln!(f, "extension {}: {}", x.name, extension_summary(x))?;
        }
        for e in &self.enum_types {
            writeln!(f, "enum type {}: {}", e.name, enum_summary(e))?;
        }
        for s in &self.sequences {
            writeln!(f, "sequence {}: {}", s.name, sequence_summary(s))?;
        }
        for t in &self.tables {
            writeln!(
                f,
                "table {}: primary key {}",
                t.name,
                key_list(&t.primary_key)
            )?;
            for c in &t.columns {
                writeln!(f, "  column {}.{}: {}", t.name, c.name, column_summary(c))?;
            }
        }
        for i in &self.indexes {
            writeln!(
                f,
                "index {} on {}: {}",
                i.name,
                i.table,
                one_line(&i.definition)
            )?;
        }
        for c in &self.constraints {
            writeln!(
                f,
                "constraint {} on {}: {}",
                c.name,
                c.table,
                one_line(&c.definition)
            )?;
        }
        for v in &self.views {
            let kind = if v.materialized {
                "materialized view"
            } else {
                "view"
            };
            writeln!(f, "{kind} {}: {}", v.name, one_line(&v.definition))?;
        }
        for func in &self.functions {
            writeln!(
                f,
                "function {}: {}",
                func.signature(),
                function_summary(func)
            )?;
        }
        for t in &self.triggers {
            writeln!(
                f,
                "trigger {} on {}: {}",
                t.name,
                t.table,
                one_line(&t.definition)
            )?;
        }
        Ok(())
    }
}

/// `text not null default 0`: type, nullability, default, identity and
/// generation, in the order a column definition would state them.
pub(crate) fn column_summary(c: &Column) -> String {
    let mut parts = Vec::new();
    if !c.data_type.is_empty() {
        parts.push(c.data_type.clone());
    }
    if !c.nullable {
        parts.push("not null".to_string());
    }
    if let Some(d) = &c.default {
        parts.push(format!("default {d}"));
    }
    if let Some(i) = &c.identity {
        parts.push(format!("generated {i} as identity"));
    }
    if let Some(g) = &c.generated {
        parts.push(format!("generated always as {g}"));
    }
    parts.join(" ")
}

/// `bigint start 1 increment 1 min 1 max 100 cache 1 no cycle owned by t.id`.
pub(crate) fn sequence_summary(s: &Sequence) -> String {
    let mut text = format!(
        "{} start {} increment {} min {} max {} cache {} {}",
        s.data_type,
        s.start,
        s.increment,
        s.min,
        s.max,
        s.cache,
        if s.cycle { "cycle" } else { "no cycle" }
    );
    if let Some(owner) = &s.owned_by {
        text.push_str(&format!(" owned by {owner}"));
    }
    text
}

/// The labels as SQL literals, in order: `'sad', 'ok', 'happy'`.
pub(crate) fn enum_summary(e: &EnumType) -> String {
    label_list(&e.labels)
}

/// `'a', 'b'` for a list of labels.
pub(crate) fn label_list(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1.3 in public`.
pub(crate) fn extension_summary(x: &Extension) -> String {
    format!("{} in {}", x.version, x.schema)
}

/// `returns trigger language plpgsql sha256:…`: the body is long and
/// multi-line, so the dump shows a short hash of the full definition, which
/// still changes whenever the definition does.
pub(crate) fn function_summary(func: &Function) -> String {
    let result = match &func.result {
        Some(r) => format!("returns {r}"),
        None => "procedure".to_string(),
    };
    format!(
        "{result} language {} sha256:{}",
        func.language,
        short_hash(&func.definition)
    )
}

/// `(a, b)`, or `none` for a table without a primary key.
pub(crate) fn key_list(columns: &[String]) -> String {
    if columns.is_empty() {
        "none".to_string()
    } else {
        format!("({})", columns.join(", "))
    }
}

/// The first 12 hex digits of the SHA-256 of `text`: enough to tell two
/// definitions apart at a glance.
pub(crate) fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `text` with every run of whitespace turned into one space, so that a
/// multi-line catalog definition fits on one dump line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::model::{Constraint, ConstraintKind, Index, Table, Trigger, View};
    use super::*;

    fn column(name: &str, ty: &str, nullable: bool, default: Option<&str>) -> Column {
        Column {
            name: name.into(),
            data_type: ty.into(),
            nullable,
            default: default.map(Into::into),
            identity: None,
            generated: None,
        }
    }

    #[test]
    fn dump_is_one_line_per_object_grouped_by_kind() {
        let schema = Schema {
            schemas: vec!["app".into()],
            enum_types: vec![EnumType {
                name: "mood".into(),
                labels: vec!["sad".into(), "it's ok".into()],
            }],
            tables: vec![Table {
                name: "users".into(),
                columns: vec![
                    column("email", "text", false, None),
                    column(
                        "id",
                        "integer",
                        false,
                        Some("nextval('users_id_seq'::regclass)"),
                    ),
                ],
                primary_key: vec!["id".into()],
            }],
            indexes: vec![Index {
                name: "idx_users_email".into(),
                table: "users".into(),
                unique: true,
                definition:
                    "CREATE UNIQUE INDEX idx_users_email ON public.users USING btree (email)".into(),
            }],
            constraints: vec![Constraint {
                name: "users_pkey".into(),
                table: "users".into(),
                kind: ConstraintKind::PrimaryKey,
                definition: "PRIMARY KEY (id)".into(),
            }],
            views: vec![View {
                name: "emails".into(),
                materialized: false,
                definition: " SELECT users.email\n   FROM users;".into(),
            }],
            triggers: vec![Trigger {
                name: "touch".into(),
                table: "users".into(),
                definition: "CREATE TRIGGER touch BEFORE UPDATE ON public.users".into(),
            }],
            ..Schema::default()
        };
        assert_eq!(
            schema.to_string(),
            "schema app\n\
             enum type mood: 'sad', 'it''s ok'\n\
             table users: primary key (id)\n\
             \x20 column users.email: text not null\n\
             \x20 column users.id: integer not null default nextval('users_id_seq'::regclass)\n\
             index idx_users_email on users: CREATE UNIQUE INDEX idx_users_email ON public.users USING btree (email)\n\
             constraint users_pkey on users: PRIMARY KEY (id)\n\
             view emails: SELECT users.email FROM users;\n\
             trigger touch on users: CREATE TRIGGER touch BEFORE UPDATE ON public.users\n"
        );
    }

    #[test]
    fn a_function_line_changes_with_its_body() {
        let mut f = Function {
            name: "touch".into(),
            arguments: String::new(),
            result: Some("trigger".into()),
            language: "plpgsql".into(),
            definition: "BEGIN RETURN NEW; END".into(),
        };
        let before = function_summary(&f);
        assert!(before.starts_with("returns trigger language plpgsql sha256:"));
        f.definition.push(' ');
        assert_ne!(before, function_summary(&f));
    }

    #[test]
    fn column_summary_states_identity_and_generation() {
        let mut c = column("id", "bigint", false, None);
        c.identity = Some("always".into());
        assert_eq!(
            column_summary(&c),
            "bigint not null generated always as identity"
        );
        let mut g = column("total", "numeric", true, None);
        g.generated = Some("(price * qty) stored".into());
        assert_eq!(
            column_summary(&g),
            "numeric generated always as (price * qty) stored"
        );
    }
}
