//! What changed between two snapshots: the proof behind `silo verify`
//! (an undo must leave no difference) and the report of `silo diff`.
//!
//! Objects are matched by name, so the order of the lists does not matter.
//! Every field of every object is compared: two schemas are equal exactly
//! when their diff is empty, which is what lets `verify` trust an empty
//! diff.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::dump::{
    column_summary, enum_summary, extension_summary, key_list, label_list, sequence_summary,
};
use super::model::{Column, Constraint, ObjectKind, Schema, Table, Trigger};

/// Whether an object appeared, disappeared or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// In `after` only.
    Added,
    /// In `before` only.
    Removed,
    /// In both, with one aspect different.
    Changed,
}

/// One difference between two schemas.
///
/// An added or removed object is one difference (a new table is not also
/// reported column by column); a changed object gives one difference per
/// aspect that changed, e.g. a column's type and its default separately.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// Added, removed or changed.
    pub change: Change,
    /// What kind of object.
    pub object: ObjectKind,
    /// The object's qualified name; a column's is `table.column`.
    pub name: String,
    /// The table a column, index, constraint or trigger belongs to.
    pub table: Option<String>,
    /// For [`Change::Changed`], which aspect changed: `type`, `nullability`,
    /// `default`, `definition`, …
    pub aspect: Option<String>,
    /// Removed: a description of the object. Changed: the aspect's old
    /// value (`None` when it was unset, e.g. no default).
    pub before: Option<String>,
    /// Added: a description of the object. Changed: the aspect's new value.
    pub after: Option<String>,
}

/// What changed from `before` to `after`, by kind (in [`ObjectKind`]
/// order), then by name, then by aspect.
pub fn diff(before: &Schema, after: &Schema) -> Vec<Difference> {
    let mut d = Diff::default();

    for (name, pair) in pair_up(&before.schemas, &after.schemas, |s| s.clone()) {
        d.presence(ObjectKind::Schema, &name, None, pair, |_| None);
    }
    for (name, pair) in pair_up(&before.extensions, &after.extensions, |x| x.name.clone()) {
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::Extension, &name, None);
            o.aspect("version", Some(&b.version), Some(&a.version));
            o.aspect("schema", Some(&b.schema), Some(&a.schema));
        } else {
            d.presence(ObjectKind::Extension, &name, None, pair, |x| {
                Some(extension_summary(x))
            });
        }
    }
    for (name, pair) in pair_up(&before.enum_types, &after.enum_types, |e| e.name.clone()) {
        if let (Some(b), Some(a)) = pair {
            d.object(ObjectKind::EnumType, &name, None).aspect(
                "labels",
                Some(&label_list(&b.labels)),
                Some(&label_list(&a.labels)),
            );
        } else {
            d.presence(ObjectKind::EnumType, &name, None, pair, |e| {
                Some(enum_summary(e))
            });
        }
    }
    for (name, pair) in pair_up(&before.sequences, &after.sequences, |s| s.name.clone()) {
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::Sequence, &name, None);
            o.aspect("type", Some(&b.data_type), Some(&a.data_type));
            o.aspect("start", Some(&b.start), Some(&a.start));
            o.aspect("increment", Some(&b.increment), Some(&a.increment));
            o.aspect("min", Some(&b.min), Some(&a.min));
            o.aspect("max", Some(&b.max), Some(&a.max));
            o.aspect("cache", Some(&b.cache), Some(&a.cache));
            o.aspect("cycle", Some(&b.cycle), Some(&a.cycle));
            o.aspect("owned by", b.owned_by.as_ref(), a.owned_by.as_ref());
        } else {
            d.presence(ObjectKind::Sequence, &name, None, pair, |s| {
                Some(sequence_summary(s))
            });
        }
    }

    // Tables first, then the columns of the tables in both, so a dump of
    // the diff reads like a dump of the schema.
    let tables = pair_up(&before.tables, &after.tables, |t| t.name.clone());
    for (name, pair) in &tables {
        if let (Some(b), Some(a)) = pair {
            d.object(ObjectKind::Table, name, None).aspect(
                "primary key",
                Some(&key_list(&b.primary_key)),
                Some(&key_list(&a.primary_key)),
            );
        } else {
            d.presence(ObjectKind::Table, name, None, *pair, |t: &Table| {
                Some(format!("primary key {}", key_list(&t.primary_key)))
            });
        }
    }
    for (table, pair) in &tables {
        if let (Some(b), Some(a)) = pair {
            for (column, pair) in pair_up(&b.columns, &a.columns, |c| c.name.clone()) {
                d.column(table, &column, pair);
            }
        }
    }

    for (name, pair) in pair_up(&before.indexes, &after.indexes, |i| i.name.clone()) {
        let table = pair.0.or(pair.1).map(|i| i.table.clone());
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::Index, &name, table);
            o.aspect("table", Some(&b.table), Some(&a.table));
            o.aspect("unique", Some(&b.unique), Some(&a.unique));
            o.aspect("definition", Some(&b.definition), Some(&a.definition));
        } else {
            d.presence(ObjectKind::Index, &name, table, pair, |i| {
                Some(i.definition.clone())
            });
        }
    }
    let constraint_key = |c: &Constraint| (c.table.clone(), c.name.clone());
    for ((table, name), pair) in pair_up(&before.constraints, &after.constraints, constraint_key) {
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::Constraint, &name, Some(table));
            o.aspect("kind", Some(b.kind.as_str()), Some(a.kind.as_str()));
            o.aspect("definition", Some(&b.definition), Some(&a.definition));
        } else {
            d.presence(ObjectKind::Constraint, &name, Some(table), pair, |c| {
                Some(c.definition.clone())
            });
        }
    }
    for (name, pair) in pair_up(&before.views, &after.views, |v| v.name.clone()) {
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::View, &name, None);
            o.aspect("materialized", Some(&b.materialized), Some(&a.materialized));
            o.aspect("definition", Some(&b.definition), Some(&a.definition));
        } else {
            d.presence(ObjectKind::View, &name, None, pair, |v| {
                Some(v.definition.clone())
            });
        }
    }
    for (name, pair) in pair_up(&before.functions, &after.functions, |f| f.signature()) {
        if let (Some(b), Some(a)) = pair {
            let mut o = d.object(ObjectKind::Function, &name, None);
            o.aspect("result", b.result.as_ref(), a.result.as_ref());
            o.aspect("language", Some(&b.language), Some(&a.language));
            o.aspect("definition", Some(&b.definition), Some(&a.definition));
        } else {
            d.presence(ObjectKind::Function, &name, None, pair, |f| {
                Some(f.definition.clone())
            });
        }
    }
    let trigger_key = |t: &Trigger| (t.table.clone(), t.name.clone());
    for ((table, name), pair) in pair_up(&before.triggers, &after.triggers, trigger_key) {
        if let (Some(b), Some(a)) = pair {
            d.object(ObjectKind::Trigger, &name, Some(table)).aspect(
                "definition",
                Some(&b.definition),
                Some(&a.definition),
            );
        } else {
            d.presence(ObjectKind::Trigger, &name, Some(table), pair, |t| {
                Some(t.definition.clone())
            });
        }
    }
    d.out
}

/// One object as it is before and after; `None` on the side it is missing
/// from.
type Pair<'a, T> = (Option<&'a T>, Option<&'a T>);

/// The objects of both sides matched by `key`, in key order.
fn pair_up<'a, T, K: Ord>(
    before: &'a [T],
    after: &'a [T],
    key: impl Fn(&T) -> K,
) -> Vec<(K, Pair<'a, T>)> {
    let mut map: BTreeMap<K, Pair<'a, T>> = BTreeMap::new();
    for b in before {
        map.entry(key(b)).or_default().0 = Some(b);
    }
    for a in after {
        map.entry(key(a)).or_default().1 = Some(a);
    }
    map.into_iter().collect()
}

/// Collects differences in the order they are found.
#[derive(Default)]
struct Diff {
    out: Vec<Difference>,
}

impl Diff {
    /// Records an object that is on one side only; `describe` gives the
    /// text kept in `before` or `after`.
    fn presence<T>(
        &mut self,
        object: ObjectKind,
        name: &str,
        table: Option<String>,
        pair: Pair<'_, T>,
        describe: impl Fn(&T) -> Option<String>,
    ) {
        let (change, before, after) = match pair {
            (Some(b), None) => (Change::Removed, describe(b), None),
            (None, Some(a)) => (Change::Added, None, describe(a)),
            _ => return,
        };
        self.out.push(Difference {
            change,
            object,
            name: name.to_string(),
            table,
            aspect: None,
            before,
            after,
        });
    }

    /// Starts comparing the aspects of an object present on both sides.
    fn object(&mut self, object: ObjectKind, name: &str, table: Option<String>) -> Aspects<'_> {
        Aspects {
            out: &mut self.out,
            object,
            name: name.to_string(),
            table,
        }
    }

    fn column(&mut self, table: &str, column: &str, pair: Pair<'_, Column>) {
        let name = format!("{table}.{column}");
        let table = Some(table.to_string());
        if let (Some(b), Some(a)) = pair {
            let null = |c: &Column| if c.nullable { "null" } else { "not null" };
            let mut o = self.object(ObjectKind::Column, &name, table);
            o.aspect("type", Some(&b.data_type), Some(&a.data_type));
            o.aspect("nullability", Some(null(b)), Some(null(a)));
            o.aspect("default", b.default.as_ref(), a.default.as_ref());
            o.aspect("identity", b.identity.as_ref(), a.identity.as_ref());
            o.aspect("generated", b.generated.as_ref(), a.generated.as_ref());
        } else {
            self.presence(ObjectKind::Column, &name, table, pair, |c| {
                Some(column_summary(c))
            });
        }
    }
}

/// The aspects of one object present on both sides.
struct Aspects<'a> {
    out: &'a mut Vec<Difference>,
    object: ObjectKind,
    name: String,
    table: Option<String>,
}

impl Aspects<'_> {
    /// Records `aspect` when its value differs.
    fn aspect<V: PartialEq + ToString + ?Sized>(
        &mut self,
        aspect: &str,
        before: Option<&V>,
        after: Option<&V>,
    ) -> &mut Self {
        if before != after {
            self.out.push(Difference {
                change: Change::Changed,
                object: self.object,
                name: self.name.clone(),
                table: self.table.clone(),
                aspect: Some(aspect.to_string()),
                before: before.map(ToString::to_string),
                after: after.map(ToString::to_string),
            });
        }
        self
    }
}

/// Values longer than this, or spanning lines, are not printed in the
/// one-line form: a whole view or function body would drown the line. The
/// full text stays in [`Difference::before`] and [`Difference::after`].
const SHORT: usize = 60;

fn is_short(text: &str) -> bool {
    text.len() <= SHORT && !text.contains('\n')
}

impl fmt::Display for Difference {
    /// `+ index idx_users_email on users`,
    /// `- column users.email (text not null)`,
    /// `~ column users.age: type integer -> bigint`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.change {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Changed => '~',
        };
        write!(f, "{sign} {} {}", self.object, self.name)?;
        // A column's name already says its table.
        if let (Some(table), false) = (&self.table, self.object == ObjectKind::Column) {
            write!(f, " on {table}")?;
        }
        match self.change {
            Change::Added | Change::Removed => {
                // Only short descriptions that add to the name: the SQL of
                // an index, view, function or trigger repeats it at length.
                let shows_summary = matches!(
                    self.object,
                    ObjectKind::Column
                        | ObjectKind::Constraint
                        | ObjectKind::EnumType
                        | ObjectKind::Extension
                );
                if let Some(text) = self.before.as_ref().or(self.after.as_ref())
                    && shows_summary
                    && is_short(text)
                {
                    write!(f, " ({text})")?;
                }
                Ok(())
            }
            Change::Changed => {
                let aspect = self.aspect.as_deref().unwrap_or("definition");
                let value = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_string());
                let (b, a) = (value(&self.before), value(&self.after));
                if is_short(&b) && is_short(&a) {
                    write!(f, ": {aspect} {b} -> {a}")
                } else {
                    write!(f, ": {aspect} changed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{
        ConstraintKind, EnumType, Extension, Function, Index, Sequence, View,
    };
    use super::*;

    /// A schema with one object of every kind and every optional field set.
    fn full() -> Schema {
        let mut s = Schema {
            schemas: vec!["app".into()],
            extensions: vec![Extension {
                name: "pgcrypto".into(),
                version: "1.3".into(),
                schema: "public".into(),
            }],
            enum_types: vec![EnumType {
                name: "mood".into(),
                labels: vec!["sad".into(), "happy".into()],
            }],
            sequences: vec![Sequence {
                name: "users_id_seq".into(),
                data_type: "integer".into(),
                start: 1,
                increment: 1,
                min: 1,
                max: 2147483647,
                cache: 1,
                cycle: false,
                owned_by: Some("users.id".into()),
            }],
            tables: vec![Table {
                name: "users".into(),
                columns: vec![
                    Column {
                        name: "age".into(),
                        data_type: "integer".into(),
                        nullable: true,
                        default: Some("0".into()),
                        identity: None,
                        generated: None,
                    },
                    Column {
                        name: "email".into(),
                        data_type: "text".into(),
                        nullable: false,
                        default: None,
                        identity: None,
                        generated: None,
                    },
                    Column {
                        name: "id".into(),
                        data_type: "bigint".into(),
                        nullable: false,
                        default: None,
                        identity: Some("always".into()),
                        generated: None,
                    },
                    Column {
                        name: "total".into(),
                        data_type: "numeric".into(),
                        nullable: true,
                        default: None,
                        identity: None,
                        generated: Some("(price * qty) stored".into()),
                    },
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
                name: "users_age_check".into(),
                table: "users".into(),
                kind: ConstraintKind::Check,
                definition: "CHECK ((age >= 0))".into(),
            }],
            views: vec![View {
                name: "adults".into(),
                materialized: false,
                definition: "SELECT 1".into(),
            }],
            functions: vec![Function {
                name: "touch".into(),
                arguments: "a integer".into(),
                result: Some("trigger".into()),
                language: "plpgsql".into(),
                definition: "BEGIN END".into(),
            }],
            triggers: vec![Trigger {
                name: "users_touch".into(),
                table: "users".into(),
                definition: "CREATE TRIGGER users_touch".into(),
            }],
        };
        s.sort();
        s
    }

    fn lines(before: &Schema, after: &Schema) -> Vec<String> {
        diff(before, after).iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn identical_schemas_have_no_differences() {
        assert!(diff(&full(), &full()).is_empty());
        assert!(diff(&Schema::default(), &Schema::default()).is_empty());
    }

    /// `verify` trusts an empty diff to mean equal schemas, so a change to
    /// any field must show up in the diff.
    #[test]
    fn every_field_is_compared() {
        type Mutation = (&'static str, fn(&mut Schema));
        let mutations: Vec<Mutation> = vec![
            ("schema", |s| s.schemas[0].push('x')),
            ("extension version", |s| s.extensions[0].version.push('x')),
            ("extension schema", |s| s.extensions[0].schema.push('x')),
            ("enum labels", |s| s.enum_types[0].labels.reverse()),
            ("sequence type", |s| s.sequences[0].data_type.push('x')),
            ("sequence start", |s| s.sequences[0].start += 1),
            ("sequence increment", |s| s.sequences[0].increment += 1),
            ("sequence min", |s| s.sequences[0].min += 1),
            ("sequence max", |s| s.sequences[0].max += 1),
            ("sequence cache", |s| s.sequences[0].cache += 1),
            ("sequence cycle", |s| s.sequences[0].cycle ^= true),
            ("sequence owner", |s| s.sequences[0].owned_by = None),
            ("table primary key", |s| s.tables[0].primary_key.clear()),
            ("column name", |s| s.tables[0].columns[0].name.push('x')),
            ("column type", |s| {
                s.tables[0].columns[0].data_type.push('x')
            }),
            ("column nullable", |s| {
                s.tables[0].columns[0].nullable ^= true
            }),
            ("column default", |s| s.tables[0].columns[0].default = None),
            ("column identity", |s| {
                s.tables[0].columns[2].identity = None
            }),
            ("column generated", |s| {
                s.tables[0].columns[3].generated = None
            }),
            ("index table", |s| s.indexes[0].table.push('x')),
            ("index unique", |s| s.indexes[0].unique ^= true),
            ("index definition", |s| s.indexes[0].definition.push('x')),
            ("constraint table", |s| s.constraints[0].table.push('x')),
            ("constraint kind", |s| {
                s.constraints[0].kind = ConstraintKind::Unique
            }),
            ("constraint definition", |s| {
                s.constraints[0].definition.push('x')
            }),
            ("view materialized", |s| s.views[0].materialized ^= true),
            ("view definition", |s| s.views[0].definition.push('x')),
            ("function arguments", |s| s.functions[0].arguments.clear()),
            ("function result", |s| s.functions[0].result = None),
            ("function language", |s| s.functions[0].language.push('x')),
            ("function definition", |s| {
                s.functions[0].definition.push('x')
            }),
            ("trigger table", |s| s.triggers[0].table.push('x')),
            ("trigger definition", |s| s.triggers[0].definition.push('x')),
        ];
        for (what, mutate) in mutations {
            let mut changed = full();
            mutate(&mut changed);
            assert_ne!(changed, full(), "{what}: the mutation changed nothing");
            assert!(
                !diff(&full(), &changed).is_empty(),
                "{what}: changed but the diff is empty"
            );
        }
    }

    #[test]
    fn added_removed_and_changed_read_as_one_line() {
        let before = full();
        let mut after = full();
        after.indexes.push(Index {
            name: "idx_users_age".into(),
            table: "users".into(),
            unique: false,
            definition: "CREATE INDEX idx_users_age ON public.users USING btree (age)".into(),
        });
        after.tables[0].columns.retain(|c| c.name != "email");
        after.tables[0].columns[0].data_type = "bigint".into();
        after.tables[0].columns[0].default = None;
        after.enum_types[0].labels.push("ok".into());
        after.views[0].definition = "SELECT 2\nFROM somewhere_with_a_long_name\nWHERE x".into();
        after.constraints.clear();
        assert_eq!(
            lines(&before, &after),
            [
                "~ enum type mood: labels 'sad', 'happy' -> 'sad', 'happy', 'ok'",
                "~ column users.age: type integer -> bigint",
                "~ column users.age: default 0 -> none",
                "- column users.email (text not null)",
                "+ index idx_users_age on users",
                "- constraint users_age_check on users (CHECK ((age >= 0)))",
                "~ view adults: definition changed",
            ]
        );
        // The full texts stay available to callers that render them.
        let view = diff(&before, &after).pop().unwrap();
        assert_eq!(view.before.as_deref(), Some("SELECT 1"));
        assert!(view.after.unwrap().contains("somewhere_with_a_long_name"));
    }

    #[test]
    fn a_new_table_is_one_difference_not_one_per_column() {
        let after = full();
        let d = diff(&Schema::default(), &after);
        let tables: Vec<_> = d
            .iter()
            .filter(|d| matches!(d.object, ObjectKind::Table | ObjectKind::Column))
            .map(|d| d.to_string())
            .collect();
        assert_eq!(tables, ["+ table users"]);
    }

    #[test]
    fn order_of_the_lists_does_not_matter() {
        let mut shuffled = full();
        shuffled.tables[0].columns.reverse();
        assert!(diff(&full(), &shuffled).is_empty());
    }
}
