//! Reading a PostgreSQL store's schema from `pg_catalog`.
//!
//! Only the service's own objects are read: system schemas (`pg_*`,
//! `information_schema`), members of extensions, and silo's bookkeeping
//! (relations and functions named `silo_*`, with everything that hangs off
//! those relations) are left out.
//!
//! The SQL is assembled at compile time (`concat!`) from the filters below,
//! so every query is a `&'static str` and nothing from the catalog is ever
//! spliced into SQL.

use sqlx::{Connection, PgConnection};

use super::model::{
    Column, Constraint, ConstraintKind, EnumType, Extension, Function, Index, Schema, Sequence,
    Table, Trigger, View, qualify,
};

/// A namespace `n` that holds user objects. PostgreSQL reserves the `pg_`
/// prefix for its own schemas (`pg_catalog`, `pg_toast`, `pg_temp_N`, …).
macro_rules! user_namespace {
    () => {
        "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
    };
}

/// Object `$oid` of catalog `$catalog` is not a member of an extension.
macro_rules! not_extension_member {
    ($catalog:literal, $oid:literal) => {
        concat!(
            "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '",
            $catalog,
            "'::regclass AND e.objid = ",
            $oid,
            " AND e.deptype = 'e')"
        )
    };
}

/// A relation `c` in namespace `n` that is the user's: in a user
/// namespace, not silo's (`silo_*`), not an extension's.
macro_rules! user_relation {
    () => {
        concat!(
            user_namespace!(),
            " AND left(c.relname, 5) <> 'silo_' AND ",
            not_extension_member!("pg_class", "c.oid")
        )
    };
}

const SCHEMAS: &str = concat!(
    "SELECT n.nspname::text FROM pg_namespace n WHERE ",
    user_namespace!(),
    " AND n.nspname <> 'public' AND ",
    not_extension_member!("pg_namespace", "n.oid")
);

// plpgsql is installed in every new database (it is in template1), so it
// says nothing about this store.
const EXTENSIONS: &str = "SELECT x.extname::text, x.extversion, n.nspname::text
     FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
     WHERE x.extname <> 'plpgsql'";

const ENUM_TYPES: &str = concat!(
    "SELECT n.nspname::text, t.typname::text,
            array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
     FROM pg_type t
     JOIN pg_namespace n ON n.oid = t.typnamespace
     JOIN pg_enum e ON e.enumtypid = t.oid
     WHERE ",
    user_namespace!(),
    " AND ",
    not_extension_member!("pg_type", "t.oid"),
    " GROUP BY n.nspname, t.typname"
);

// The owner is the column of a `serial` ('a') or identity ('i') dependency;
// a sequence owned by a silo table is silo's, whatever its name.
const SEQUENCES: &str = concat!(
    "SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL),
            s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
            tn.nspname::text, t.relname::text, a.attname::text
     FROM pg_sequence s
     JOIN pg_class c ON c.oid = s.seqrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
     LEFT JOIN pg_class t ON t.oid = d.refobjid
     LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
     LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
     WHERE ",
    user_relation!(),
    " AND (t.oid IS NULL OR left(t.relname, 5) <> 'silo_')"
);

const TABLES: &str = concat!(
    "SELECT n.nspname::text, c.relname::text,
            coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                      FROM pg_constraint p
                      CROSS JOIN LATERAL unnest(p.conkey) WITH ORDINALITY AS k(attnum, ord)
                      JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = k.attnum
                      WHERE p.conrelid = c.oid AND p.contype = 'p'), '{}')
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND ",
    user_relation!()
);

// A generated column's expression is stored where a default would be; it is
// reported as the generation, not as a default.
const COLUMNS: &str = concat!(
    "SELECT n.nspname::text, c.relname::text, a.attname::text,
            format_type(a.atttypid, a.atttypmod),
            NOT a.attnotnull,
            CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
            CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
            CASE WHEN a.attgenerated <> ''
                 THEN '(' || pg_get_expr(d.adbin, d.adrelid) || ') '
                      || CASE a.attgenerated WHEN 's' THEN 'stored' ELSE 'virtual' END
            END
     FROM pg_class c
     JOIN pg_namespace n ON n.oid = c.relnamespace
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relkind IN ('r', 'p') AND ",
    user_relation!()
);

// Indexes that back a primary key, unique or exclusion constraint are the
// constraint's; listing them again would report one change twice.
const INDEXES: &str = concat!(
    "SELECT n.nspname::text, i.relname::text, c.relname::text, x.indisunique,
            pg_get_indexdef(x.indexrelid)
     FROM pg_index x
     JOIN pg_class i ON i.oid = x.indexrelid
     JOIN pg_class c ON c.oid = x.indrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ",
    user_relation!(),
    " AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                      WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x'))"
);

// Only table constraints of the five kinds; PostgreSQL 18 also records NOT
// NULL as constraints ('n'), which the columns already say.
const CONSTRAINTS: &str = concat!(
    "SELECT n.nspname::text, c.relname::text, k.conname::text, k.contype::text,
            pg_get_constraintdef(k.oid)
     FROM pg_constraint k
     JOIN pg_class c ON c.oid = k.conrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE k.contype IN ('p', 'u', 'f', 'c', 'x') AND ",
    user_relation!()
);

const VIEWS: &str = concat!(
    "SELECT n.nspname::text, c.relname::text, c.relkind = 'm', pg_get_viewdef(c.oid)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('v', 'm') AND ",
    user_relation!()
);

// Aggregates ('a') and window functions ('w') are left out:
// `pg_get_functiondef` cannot print them.
// silo's own functions (`silo_publish`, `silo_uuid_v7`) are bookkeeping
// like its tables.
const FUNCTIONS: &str = concat!(
    "SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
            pg_get_function_result(p.oid), l.lanname::text, pg_get_functiondef(p.oid)
     FROM pg_proc p
     JOIN pg_namespace n ON n.oid = p.pronamespace
     JOIN pg_language l ON l.oid = p.prolang
     WHERE p.prokind IN ('f', 'p') AND left(p.proname, 5) <> 'silo_' AND ",
    user_namespace!(),
    " AND ",
    not_extension_member!("pg_proc", "p.oid")
);

// Internal triggers implement foreign keys and are covered by the
// constraint.
const TRIGGERS: &str = concat!(
    "SELECT n.nspname::text, c.relname::text, t.tgname::text, pg_get_triggerdef(t.oid)
     FROM pg_trigger t
     JOIN pg_class c ON c.oid = t.tgrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND ",
    user_relation!()
);

/// Reads the schema of the database `conn` is connected to.
///
/// Runs in a read-only transaction of its own (a savepoint when `conn` is
/// already in one) that is rolled back at the end, so it leaves the session
/// as it found it. Inside it, `search_path` is set to `pg_catalog, public`:
/// the catalog's printing functions qualify names that are not on the path,
/// and a fixed path makes their text the same whoever connects.
pub async fn snapshot_postgres(conn: &mut PgConnection) -> Result<Schema, sqlx::Error> {
    let mut tx = if conn.is_in_transaction() {
        conn.begin().await?
    } else {
        // One snapshot for every query, so concurrent DDL cannot tear it.
        conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?
    };
    sqlx::query("SELECT set_config('search_path', 'pg_catalog, public', true)")
        .execute(&mut *tx)
        .await?;
    let schema = read(&mut tx).await?;
    tx.rollback().await?;
    Ok(schema)
}

async fn read(conn: &mut PgConnection) -> Result<Schema, sqlx::Error> {
    let mut schema = Schema {
        schemas: sqlx::query_scalar(SCHEMAS).fetch_all(&mut *conn).await?,
        ..Schema::default()
    };

    let rows: Vec<(String, String, String)> =
        sqlx::query_as(EXTENSIONS).fetch_all(&mut *conn).await?;
    schema.extensions = rows
        .into_iter()
        .map(|(name, version, schema)| Extension {
            name,
            version,
            schema,
        })
        .collect();

    let rows: Vec<(String, String, Vec<String>)> =
        sqlx::query_as(ENUM_TYPES).fetch_all(&mut *conn).await?;
    schema.enum_types = rows
        .into_iter()
        .map(|(ns, name, labels)| EnumType {
            name: qualify(&ns, &name),
            labels,
        })
        .collect();

    type SequenceRow = (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        i64,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<SequenceRow> = sqlx::query_as(SEQUENCES).fetch_all(&mut *conn).await?;
    schema.sequences = rows
        .into_iter()
        .map(
            |(ns, name, data_type, start, increment, min, max, cache, cycle, t_ns, t, col)| {
                let owned_by = match (t_ns, t, col) {
                    (Some(t_ns), Some(t), Some(col)) => {
                        Some(format!("{}.{col}", qualify(&t_ns, &t)))
                    }
                    _ => None,
                };
                Sequence {
                    name: qualify(&ns, &name),
                    data_type,
                    start,
                    increment,
                    min,
                    max,
                    cache,
                    cycle,
                    owned_by,
                }
            },
        )
        .collect();

    let rows: Vec<(String, String, Vec<String>)> =
        sqlx::query_as(TABLES).fetch_all(&mut *conn).await?;
    schema.tables = rows
        .into_iter()
        .map(|(ns, name, primary_key)| Table {
            name: qualify(&ns, &name),
            columns: Vec::new(),
            primary_key,
        })
        .collect();

    type ColumnRow = (
        String,
        String,
        String,
        String,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<ColumnRow> = sqlx::query_as(COLUMNS).fetch_all(&mut *conn).await?;
    for (ns, table, name, data_type, nullable, default, identity, generated) in rows {
        let table = qualify(&ns, &table);
        if let Some(t) = schema.tables.iter_mut().find(|t| t.name == table) {
            t.columns.push(Column {
                name,
                data_type,
                nullable,
                default,
                identity,
                generated,
            });
        }
    }

    let rows: Vec<(String, String, String, bool, String)> =
        sqlx::query_as(INDEXES).fetch_all(&mut *conn).await?;
    schema.indexes = rows
        .into_iter()
        .map(|(ns, name, table, unique, definition)| Index {
            name: qualify(&ns, &name),
            table: qualify(&ns, &table),
            unique,
            definition,
        })
        .collect();

    let rows: Vec<(String, String, String, String, String)> =
        sqlx::query_as(CONSTRAINTS).fetch_all(&mut *conn).await?;
    schema.constraints = rows
        .into_iter()
        .filter_map(|(ns, table, name, kind, definition)| {
            let kind = match kind.as_str() {
                "p" => ConstraintKind::PrimaryKey,
                "u" => ConstraintKind::Unique,
                "f" => ConstraintKind::ForeignKey,
                "c" => ConstraintKind::Check,
                "x" => ConstraintKind::Exclusion,
                _ => return None,
            };
            Some(Constraint {
                name,
                table: qualify(&ns, &table),
                kind,
                definition,
            })
        })
        .collect();

    let rows: Vec<(String, String, bool, String)> =
        sqlx::query_as(VIEWS).fetch_all(&mut *conn).await?;
    schema.views = rows
        .into_iter()
        .map(|(ns, name, materialized, definition)| View {
            name: qualify(&ns, &name),
            materialized,
            definition,
        })
        .collect();

    let rows: Vec<(String, String, String, Option<String>, String, String)> =
        sqlx::query_as(FUNCTIONS).fetch_all(&mut *conn).await?;
    schema.functions = rows
        .into_iter()
        .map(
            |(ns, name, arguments, result, language, definition)| Function {
                name: qualify(&ns, &name),
                arguments,
                result,
                language,
                definition,
            },
        )
        .collect();

    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as(TRIGGERS).fetch_all(&mut *conn).await?;
    schema.triggers = rows
        .into_iter()
        .map(|(ns, table, name, definition)| Trigger {
            name,
            table: qualify(&ns, &table),
            definition,
        })
        .collect();

    schema.sort();
    Ok(schema)
}
