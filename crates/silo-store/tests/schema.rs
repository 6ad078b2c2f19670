//! Schema snapshots on real stores: a scratch database on the shared
//! PostgreSQL server and a temporary SQLite file. Each story that makes
//! sense on both engines is written once and run on both.

use silo_store::schema::{
    Column, ConstraintKind, EnumType, Extension, Index, Schema, Sequence, Table, diff,
    snapshot_postgres, snapshot_sqlite,
};
use silo_testkit::{Prefix, admin_url};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};

/// A fresh, empty store. Dropping it drops the PostgreSQL database (the
/// [`Prefix`] guard does so from a thread of its own, even when the test
/// panicked) or removes the SQLite file.
enum Store {
    // Fields drop in order: the connection closes before its store goes.
    Postgres {
        conn: PgConnection,
        _db: Prefix,
    },
    Sqlite {
        conn: SqliteConnection,
        _dir: tempfile::TempDir,
    },
}

#[derive(Clone, Copy, Debug)]
enum Engine {
    Postgres,
    Sqlite,
}

impl Store {
    async fn new(engine: Engine) -> Store {
        match engine {
            Engine::Postgres => Store::postgres().await,
            Engine::Sqlite => Store::sqlite().await,
        }
    }

    async fn postgres() -> Store {
        // The guard exists before the database does, so a failure after
        // CREATE DATABASE still drops it.
        let db = Prefix::new();
        let name = db.name("schema");
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let options: PgConnectOptions = admin_url().parse().unwrap();
        let conn = PgConnection::connect_with(&options.database(&name))
            .await
            .unwrap();
        Store::Postgres { conn, _db: db }
    }

    async fn sqlite() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("store.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let conn = SqliteConnection::connect_with(&options).await.unwrap();
        Store::Sqlite { conn, _dir: dir }
    }

    /// Runs a script of one or more statements.
    async fn exec(&mut self, sql: &'static str) {
        let result = match self {
            Store::Postgres { conn, .. } => sqlx::raw_sql(sql).execute(conn).await.map(drop),
            Store::Sqlite { conn, .. } => sqlx::raw_sql(sql).execute(conn).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }

    async fn snapshot(&mut self) -> Schema {
        match self {
            Store::Postgres { conn, .. } => snapshot_postgres(conn).await.unwrap(),
            Store::Sqlite { conn, .. } => snapshot_sqlite(conn).await.unwrap(),
        }
    }

    fn pg(&mut self) -> &mut PgConnection {
        match self {
            Store::Postgres { conn, .. } => conn,
            Store::Sqlite { .. } => panic!("not a PostgreSQL store"),
        }
    }
}

fn lines(before: &Schema, after: &Schema) -> Vec<String> {
    diff(before, after).iter().map(|d| d.to_string()).collect()
}

fn table<'a>(s: &'a Schema, name: &str) -> &'a Table {
    s.tables
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no table {name} in\n{s}"))
}

fn column<'a>(t: &'a Table, name: &str) -> &'a Column {
    t.columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name} in {t:?}"))
}

fn sequence<'a>(s: &'a Schema, name: &str) -> &'a Sequence {
    s.sequences
        .iter()
        .find(|q| q.name == name)
        .unwrap_or_else(|| panic!("no sequence {name} in\n{s}"))
}

/// `(table, name, kind, definition)` of every constraint.
fn constraints(s: &Schema) -> Vec<(&str, &str, ConstraintKind, &str)> {
    s.constraints
        .iter()
        .map(|c| {
            (
                c.table.as_str(),
                c.name.as_str(),
                c.kind,
                c.definition.as_str(),
            )
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------
// Stories run on both engines.

/// A new store holds nothing of the user's: system catalogs, `plpgsql` and
/// SQLite's internal tables are not reported.
async fn empty_store_has_an_empty_schema(engine: Engine) {
    let mut store = Store::new(engine).await;
    assert_eq!(store.snapshot().await, Schema::default());
}

#[tokio::test]
async fn empty_store_has_an_empty_schema_postgres() {
    empty_store_has_an_empty_schema(Engine::Postgres).await;
}

#[tokio::test]
async fn empty_store_has_an_empty_schema_sqlite() {
    empty_store_has_an_empty_schema(Engine::Sqlite).await;
}

/// silo's bookkeeping tables, and the indexes, constraints, triggers and
/// sequences that hang off them (whatever their own names), change nothing
/// in the snapshot.
async fn silo_tables_are_left_out(engine: Engine, user: &'static str, silo: &'static str) {
    let mut store = Store::new(engine).await;
    store.exec(user).await;
    let before = store.snapshot().await;
    assert_eq!(
        before.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
        ["notes"]
    );
    store.exec(silo).await;
    let after = store.snapshot().await;
    assert_eq!(lines(&before, &after), Vec::<String>::new());
    assert_eq!(before, after);
}

#[tokio::test]
async fn silo_tables_are_left_out_postgres() {
    silo_tables_are_left_out(
        Engine::Postgres,
        "CREATE TABLE notes (id serial PRIMARY KEY, body text);
         CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;",
        "CREATE TABLE silo_schema_history (
             installed_rank serial PRIMARY KEY,
             version text UNIQUE,
             checksum integer NOT NULL CHECK (checksum <> 0)
         );
         CREATE INDEX history_by_version ON silo_schema_history (version);
         CREATE SEQUENCE history_counter OWNED BY silo_schema_history.checksum;
         CREATE TRIGGER history_stamp BEFORE UPDATE ON silo_schema_history
             FOR EACH ROW EXECUTE FUNCTION stamp();
         CREATE TABLE silo_store (key text PRIMARY KEY, value text NOT NULL,
             note integer REFERENCES notes (id));",
    )
    .await;
}

#[tokio::test]
async fn silo_tables_are_left_out_sqlite() {
    silo_tables_are_left_out(
        Engine::Sqlite,
        "CREATE TABLE notes (id integer PRIMARY KEY, body text);",
        "CREATE TABLE silo_schema_history (
             installed_rank integer PRIMARY KEY,
             version text UNIQUE,
             checksum integer NOT NULL
         );
         CREATE INDEX history_by_version ON silo_schema_history (version);
         CREATE TRIGGER history_stamp AFTER INSERT ON silo_schema_history BEGIN SELECT 1; END;
         CREATE TABLE silo_store (key text PRIMARY KEY, value text NOT NULL,
             note integer REFERENCES notes (id));",
    )
    .await;
}

/// Two snapshots of one schema are equal, and so are snapshots of two
/// stores that got the same objects in opposite orders: the order rows
/// come out of the catalog never shows. Equal snapshots print, serialize
/// and diff as equal.
async fn snapshots_are_deterministic(engine: Engine, units: &[&'static str]) {
    let mut forward = Store::new(engine).await;
    for unit in units {
        forward.exec(unit).await;
    }
    let mut backward = Store::new(engine).await;
    for unit in units.iter().rev() {
        backward.exec(unit).await;
    }
    let first = forward.snapshot().await;
    let second = forward.snapshot().await;
    let other = backward.snapshot().await;
    assert!(first.tables.len() >= 3, "{first}");

    assert_eq!(first, second);
    assert_eq!(first, other);
    assert_eq!(first.to_string(), other.to_string());
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&other).unwrap()
    );
    assert_eq!(diff(&first, &second), []);
    assert_eq!(diff(&first, &other), []);
}

#[tokio::test]
async fn snapshots_are_deterministic_postgres() {
    snapshots_are_deterministic(
        Engine::Postgres,
        &[
            "CREATE TABLE zebras (id integer PRIMARY KEY, name text NOT NULL);
             CREATE INDEX zebras_name ON zebras (name);",
            "CREATE TABLE apples (id serial PRIMARY KEY, kind text UNIQUE);
             CREATE VIEW apple_kinds AS SELECT kind FROM apples;",
            "CREATE TYPE size AS ENUM ('s', 'm', 'l');",
            "CREATE SEQUENCE tickets;",
            "CREATE FUNCTION answer() RETURNS integer LANGUAGE sql AS $$ SELECT 42 $$;",
            "CREATE TABLE mangos (id integer CHECK (id > 0), ripe boolean DEFAULT false);
             CREATE INDEX mangos_ripe ON mangos (ripe);",
        ],
    )
    .await;
}

#[tokio::test]
async fn snapshots_are_deterministic_sqlite() {
    snapshots_are_deterministic(
        Engine::Sqlite,
        &[
            "CREATE TABLE zebras (id integer PRIMARY KEY, name text NOT NULL);
             CREATE INDEX zebras_name ON zebras (name);",
            "CREATE TABLE apples (id integer PRIMARY KEY, kind text UNIQUE);
             CREATE VIEW apple_kinds AS SELECT kind FROM apples;",
            // Two foreign keys: SQLite numbers them, silo must not.
            "CREATE TABLE mangos (id integer, ripe boolean DEFAULT 0,
                 zebra integer REFERENCES zebras (id), apple integer REFERENCES apples (id));
             CREATE INDEX mangos_ripe ON mangos (ripe);
             CREATE TRIGGER mangos_ripen AFTER INSERT ON mangos BEGIN SELECT 1; END;",
        ],
    )
    .await;
}

/// The `silo verify` story: snapshot, apply a migration, see exactly what
/// it changed (an added index, a dropped column, a changed type, a changed
/// default), apply its undo, and find the schema as it was.
struct Migration {
    base: &'static str,
    apply: &'static str,
    undo: &'static str,
    expected: &'static [&'static str],
}

async fn diff_names_each_change_and_undo_restores(engine: Engine, m: Migration) {
    let mut store = Store::new(engine).await;
    store.exec(m.base).await;
    let before = store.snapshot().await;
    store.exec(m.apply).await;
    let applied = store.snapshot().await;
    assert_eq!(lines(&before, &applied), m.expected);
    store.exec(m.undo).await;
    let undone = store.snapshot().await;
    assert_eq!(lines(&before, &undone), Vec::<String>::new());
    assert_eq!(before, undone);
}

#[tokio::test]
async fn diff_names_each_change_and_undo_restores_postgres() {
    diff_names_each_change_and_undo_restores(
        Engine::Postgres,
        Migration {
            base: "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL,
                       nickname text, age integer, status text NOT NULL DEFAULT 'old');",
            apply: "CREATE INDEX idx_users_email ON users (email);
                    ALTER TABLE users DROP COLUMN nickname;
                    ALTER TABLE users ALTER COLUMN age TYPE bigint;
                    ALTER TABLE users ALTER COLUMN status SET DEFAULT 'new';",
            // The dropped column comes back last: column order is not
            // compared.
            undo: "DROP INDEX idx_users_email;
                   ALTER TABLE users ADD COLUMN nickname text;
                   ALTER TABLE users ALTER COLUMN age TYPE integer;
                   ALTER TABLE users ALTER COLUMN status SET DEFAULT 'old';",
            expected: &[
                "~ column users.age: type integer -> bigint",
                "- column users.nickname (text)",
                "~ column users.status: default 'old'::text -> 'new'::text",
                "+ index idx_users_email on users",
            ],
        },
    )
    .await;
}

#[tokio::test]
async fn diff_names_each_change_and_undo_restores_sqlite() {
    diff_names_each_change_and_undo_restores(
        Engine::Sqlite,
        Migration {
            base: "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL,
                       nickname text, age integer, status text NOT NULL DEFAULT 'old');",
            // SQLite changes a type or default by rebuilding the table.
            apply: "ALTER TABLE users DROP COLUMN nickname;
                    CREATE TABLE users_new (id integer PRIMARY KEY, email text NOT NULL,
                        age bigint, status text NOT NULL DEFAULT 'new');
                    INSERT INTO users_new SELECT id, email, age, status FROM users;
                    DROP TABLE users;
                    ALTER TABLE users_new RENAME TO users;
                    CREATE INDEX idx_users_email ON users (email);",
            undo: "DROP INDEX idx_users_email;
                   CREATE TABLE users_old (id integer PRIMARY KEY, email text NOT NULL,
                       age integer, status text NOT NULL DEFAULT 'old', nickname text);
                   INSERT INTO users_old (id, email, age, status)
                       SELECT id, email, age, status FROM users;
                   DROP TABLE users;
                   ALTER TABLE users_old RENAME TO users;",
            // The pragmas spell SQLite's own type names (INTEGER, TEXT, …)
            // in capitals, other declared types as written.
            expected: &[
                "~ column users.age: type INTEGER -> bigint",
                "- column users.nickname (TEXT)",
                "~ column users.status: default 'old' -> 'new'",
                "+ index idx_users_email on users",
            ],
        },
    )
    .await;
}

// One body for both engines' transaction types.
macro_rules! snapshot_in_transaction {
    ($conn:expr, $snapshot:path) => {{
        let mut tx = $conn.begin().await.unwrap();
        sqlx::raw_sql("CREATE TABLE drafts (id integer)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let inside = $snapshot(&mut tx).await.unwrap();
        assert!(inside.tables.iter().any(|t| t.name == "drafts"), "{inside}");
        sqlx::raw_sql("INSERT INTO drafts VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }};
}

/// Inside a caller's open transaction, a snapshot sees the transaction's
/// own uncommitted changes and leaves it open and usable; after the caller
/// rolls back, they are gone.
async fn snapshot_inside_a_transaction(engine: Engine) {
    let mut store = Store::new(engine).await;
    store.exec("CREATE TABLE kept (id integer)").await;
    let committed = store.snapshot().await;
    match &mut store {
        Store::Postgres { conn, .. } => snapshot_in_transaction!(conn, snapshot_postgres),
        Store::Sqlite { conn, .. } => snapshot_in_transaction!(conn, snapshot_sqlite),
    }
    assert_eq!(store.snapshot().await, committed);
}

#[tokio::test]
async fn snapshot_inside_a_transaction_postgres() {
    snapshot_inside_a_transaction(Engine::Postgres).await;
}

#[tokio::test]
async fn snapshot_inside_a_transaction_sqlite() {
    snapshot_inside_a_transaction(Engine::Sqlite).await;
}

// ---------------------------------------------------------------------------
// PostgreSQL

const PG_EVERY_KIND: &str = r#"
CREATE SCHEMA app;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
CREATE SEQUENCE invoice_no AS bigint START 100 INCREMENT 5;
CREATE TABLE users (
    id serial PRIMARY KEY,
    email text NOT NULL,
    age integer CHECK (age >= 0),
    status text NOT NULL DEFAULT 'new',
    feeling mood,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX idx_users_email ON users (lower(email));
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    price numeric(10, 2) NOT NULL,
    qty integer NOT NULL,
    total numeric GENERATED ALWAYS AS (price * qty) STORED
);
CREATE TABLE app.accounts (
    region text,
    number integer,
    PRIMARY KEY (number, region)
);
CREATE TABLE bookings (
    room integer NOT NULL,
    during tstzrange NOT NULL,
    EXCLUDE USING gist (during WITH &&)
);
CREATE VIEW adults AS SELECT id, email FROM users WHERE age >= 18;
CREATE MATERIALIZED VIEW order_totals AS
    SELECT user_id, sum(total) AS total FROM orders GROUP BY user_id;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();
CREATE PROCEDURE app.noop(n integer) LANGUAGE sql AS $$ SELECT n $$;
"#;

/// Every kind of object is read, with the catalog's own text.
#[tokio::test]
async fn snapshot_sees_every_kind_postgres() {
    let mut store = Store::postgres().await;
    store.exec(PG_EVERY_KIND).await;
    let s = store.snapshot().await;

    assert_eq!(s.schemas, ["app"]);
    assert_eq!(s.extensions, []);
    // Labels in the type's order, not creation or alphabetical order.
    assert_eq!(
        s.enum_types,
        [EnumType {
            name: "mood".into(),
            labels: strings(&["sad", "meh", "ok", "happy"]),
        }]
    );

    assert_eq!(
        sequence(&s, "invoice_no"),
        &Sequence {
            name: "invoice_no".into(),
            data_type: "bigint".into(),
            start: 100,
            increment: 5,
            min: 1,
            max: i64::MAX,
            cache: 1,
            cycle: false,
            owned_by: None,
        }
    );
    assert_eq!(
        sequence(&s, "users_id_seq").owned_by.as_deref(),
        Some("users.id")
    );
    assert_eq!(
        sequence(&s, "orders_id_seq").owned_by.as_deref(),
        Some("orders.id")
    );
    assert_eq!(s.sequences.len(), 3, "{s}");

    assert_eq!(
        s.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["app.accounts", "bookings", "orders", "users"]
    );
    let users = table(&s, "users");
    assert_eq!(users.primary_key, ["id"]);
    assert_eq!(
        users
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["age", "email", "feeling", "id", "status", "updated_at"]
    );
    assert_eq!(
        column(users, "id"),
        &Column {
            name: "id".into(),
            data_type: "integer".into(),
            nullable: false,
            default: Some("nextval('users_id_seq'::regclass)".into()),
            identity: None,
            generated: None,
        }
    );
    assert!(!column(users, "email").nullable);
    assert!(column(users, "age").nullable);
    assert_eq!(column(users, "age").default, None);
    assert_eq!(
        column(users, "status").default.as_deref(),
        Some("'new'::text")
    );
    assert_eq!(column(users, "feeling").data_type, "mood");
    let updated_at = column(users, "updated_at");
    assert_eq!(updated_at.data_type, "timestamp with time zone");
    assert_eq!(updated_at.default.as_deref(), Some("now()"));

    let orders = table(&s, "orders");
    let id = column(orders, "id");
    assert_eq!(id.identity.as_deref(), Some("always"));
    assert_eq!(id.default, None);
    assert_eq!(column(orders, "price").data_type, "numeric(10,2)");
    let total = column(orders, "total").generated.as_deref().unwrap();
    assert!(
        total.contains("price") && total.ends_with(" stored"),
        "{total}"
    );
    assert_eq!(column(orders, "total").default, None);
    // Key order, not column order.
    assert_eq!(table(&s, "app.accounts").primary_key, ["number", "region"]);
    assert_eq!(table(&s, "bookings").primary_key, Vec::<String>::new());

    // The indexes behind the primary keys and the exclusion constraint
    // are reported as constraints only.
    assert_eq!(
        s.indexes,
        [Index {
            name: "idx_users_email".into(),
            table: "users".into(),
            unique: true,
            definition:
                "CREATE UNIQUE INDEX idx_users_email ON public.users USING btree (lower(email))"
                    .into(),
        }]
    );
    assert_eq!(
        constraints(&s),
        [
            (
                "app.accounts",
                "accounts_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (number, region)"
            ),
            (
                "bookings",
                "bookings_during_excl",
                ConstraintKind::Exclusion,
                "EXCLUDE USING gist (during WITH &&)"
            ),
            (
                "orders",
                "orders_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (id)"
            ),
            (
                "orders",
                "orders_user_id_fkey",
                ConstraintKind::ForeignKey,
                "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"
            ),
            (
                "users",
                "users_age_check",
                ConstraintKind::Check,
                "CHECK ((age >= 0))"
            ),
            (
                "users",
                "users_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (id)"
            ),
        ]
    );

    assert_eq!(
        s.views
            .iter()
            .map(|v| (v.name.as_str(), v.materialized))
            .collect::<Vec<_>>(),
        [("adults", false), ("order_totals", true)]
    );
    assert!(s.views[0].definition.contains(">= 18"), "{s}");

    assert_eq!(
        s.functions
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["app.noop", "touch"]
    );
    let noop = &s.functions[0];
    assert!(noop.arguments.contains("n integer"), "{noop:?}");
    assert_eq!(noop.result, None);
    let touch = &s.functions[1];
    assert_eq!(touch.signature(), "touch()");
    assert_eq!(touch.result.as_deref(), Some("trigger"));
    assert_eq!(touch.language, "plpgsql");
    assert!(
        touch.definition.contains("NEW.updated_at := now();"),
        "{touch:?}"
    );

    assert_eq!(s.triggers.len(), 1, "{s}");
    assert_eq!(
        (s.triggers[0].name.as_str(), s.triggers[0].table.as_str()),
        ("users_touch", "users")
    );
    assert!(
        s.triggers[0]
            .definition
            .starts_with("CREATE TRIGGER users_touch BEFORE UPDATE ON public.users"),
        "{s}"
    );

    // `silo schema dump --json` reads back to the same schema.
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Schema>(&json).unwrap(), s);
}

/// Extensions are listed; the objects they install or adopt are not, of
/// any kind.
#[tokio::test]
async fn extension_members_are_left_out_postgres() {
    let mut store = Store::postgres().await;
    // citext ships with the server (contrib); plpgsql adopts the rest, so
    // every kind of member is covered without more extensions.
    store
        .exec(
            "CREATE EXTENSION citext;
             CREATE SCHEMA ext_ns;
             CREATE TYPE ext_mood AS ENUM ('x');
             CREATE SEQUENCE ext_seq;
             CREATE TABLE ext_owned (id integer PRIMARY KEY, note text CHECK (note <> ''));
             CREATE INDEX ext_owned_note ON ext_owned (note);
             CREATE VIEW ext_view AS SELECT 1 AS one;
             CREATE FUNCTION ext_helper() RETURNS trigger LANGUAGE plpgsql
                 AS $$ BEGIN RETURN NEW; END $$;
             CREATE TRIGGER ext_touch BEFORE UPDATE ON ext_owned
                 FOR EACH ROW EXECUTE FUNCTION ext_helper();
             ALTER EXTENSION plpgsql ADD SCHEMA ext_ns;
             ALTER EXTENSION plpgsql ADD TYPE ext_mood;
             ALTER EXTENSION plpgsql ADD SEQUENCE ext_seq;
             ALTER EXTENSION plpgsql ADD TABLE ext_owned;
             ALTER EXTENSION plpgsql ADD VIEW ext_view;
             ALTER EXTENSION plpgsql ADD FUNCTION ext_helper();",
        )
        .await;
    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'citext'")
            .fetch_one(store.pg())
            .await
            .unwrap();
    let s = store.snapshot().await;
    assert_eq!(
        s,
        Schema {
            extensions: vec![Extension {
                name: "citext".into(),
                version,
                schema: "public".into(),
            }],
            ..Schema::default()
        },
        "{s}"
    );
}

/// The snapshot's text does not depend on the session's `search_path`
/// (the catalog qualifies names that are off the path), and taking one
/// leaves the session's `search_path` as it was.
#[tokio::test]
async fn snapshot_ignores_and_keeps_the_search_path_postgres() {
    let mut store = Store::postgres().await;
    store
        .exec(
            "CREATE SCHEMA app;
             CREATE TABLE app.accounts (id integer PRIMARY KEY);
             CREATE TABLE orders (id integer, account integer REFERENCES app.accounts (id));
             CREATE VIEW account_ids AS SELECT id FROM app.accounts;",
        )
        .await;
    let plain = store.snapshot().await;
    store.exec("SET search_path = app, public").await;
    let on_path = store.snapshot().await;
    assert_eq!(plain, on_path);
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(store.pg())
        .await
        .unwrap();
    assert_eq!(path, "app, public");
}

// ---------------------------------------------------------------------------
// SQLite

/// Every kind of object SQLite has is read: columns with their declared
/// types, defaults, nullability and generation; the primary key, unique
/// constraints and foreign keys under PostgreSQL-style names; indexes,
/// views and triggers with their text.
#[tokio::test]
async fn snapshot_sees_every_kind_sqlite() {
    let mut store = Store::sqlite().await;
    store
        .exec(
            "CREATE TABLE users (
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 email TEXT NOT NULL UNIQUE,
                 age integer CHECK (age >= 0),
                 status text NOT NULL DEFAULT 'new',
                 email_lower text GENERATED ALWAYS AS (lower(email)) VIRTUAL
             );
             CREATE TABLE orders (
                 id integer PRIMARY KEY,
                 user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                 price numeric NOT NULL,
                 qty integer NOT NULL DEFAULT 1,
                 total numeric GENERATED ALWAYS AS (price * qty) STORED
             );
             CREATE TABLE accounts (
                 region text,
                 number integer,
                 PRIMARY KEY (number, region),
                 UNIQUE (region, number)
             );
             CREATE UNIQUE INDEX idx_users_email_lower ON users (lower(email));
             CREATE INDEX idx_orders_user ON orders (user_id) WHERE qty > 0;
             CREATE VIEW adults AS
                 SELECT id, email
                 FROM users   WHERE age >= 18;
             CREATE TRIGGER users_touch AFTER UPDATE ON users
             BEGIN
                 UPDATE users SET status = 'changed' WHERE id = NEW.id;
             END;",
        )
        .await;
    let s = store.snapshot().await;

    // AUTOINCREMENT made sqlite_sequence: SQLite's, not the service's.
    assert_eq!(
        s.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["accounts", "orders", "users"]
    );
    let users = table(&s, "users");
    assert_eq!(users.primary_key, ["id"]);
    assert_eq!(
        users
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["age", "email", "email_lower", "id", "status"]
    );
    assert_eq!(column(users, "id").data_type, "INTEGER");
    assert!(!column(users, "email").nullable);
    assert!(column(users, "age").nullable);
    assert_eq!(column(users, "status").default.as_deref(), Some("'new'"));
    assert_eq!(
        column(users, "email_lower").generated.as_deref(),
        Some("virtual")
    );
    let orders = table(&s, "orders");
    assert_eq!(column(orders, "qty").default.as_deref(), Some("1"));
    assert_eq!(column(orders, "total").generated.as_deref(), Some("stored"));
    assert_eq!(table(&s, "accounts").primary_key, ["number", "region"]);

    assert_eq!(
        constraints(&s),
        [
            (
                "accounts",
                "accounts_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (number, region)"
            ),
            (
                "accounts",
                "accounts_region_number_key",
                ConstraintKind::Unique,
                "UNIQUE (region, number)"
            ),
            (
                "orders",
                "orders_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (id)"
            ),
            (
                "orders",
                "orders_user_id_fkey",
                ConstraintKind::ForeignKey,
                "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"
            ),
            (
                "users",
                "users_email_key",
                ConstraintKind::Unique,
                "UNIQUE (email)"
            ),
            (
                "users",
                "users_pkey",
                ConstraintKind::PrimaryKey,
                "PRIMARY KEY (id)"
            ),
        ]
    );
    assert_eq!(
        s.indexes,
        [
            Index {
                name: "idx_orders_user".into(),
                table: "orders".into(),
                unique: false,
                definition: "CREATE INDEX idx_orders_user ON orders (user_id) WHERE qty > 0".into(),
            },
            Index {
                name: "idx_users_email_lower".into(),
                table: "users".into(),
                unique: true,
                definition: "CREATE UNIQUE INDEX idx_users_email_lower ON users (lower(email))"
                    .into(),
            },
        ]
    );
    assert_eq!(s.views.len(), 1);
    assert_eq!(s.views[0].name, "adults");
    assert_eq!(
        s.views[0].definition,
        "CREATE VIEW adults AS SELECT id, email FROM users WHERE age >= 18"
    );
    assert_eq!(s.triggers.len(), 1);
    assert_eq!(
        (s.triggers[0].name.as_str(), s.triggers[0].table.as_str()),
        ("users_touch", "users")
    );
    assert_eq!(
        s.triggers[0].definition,
        "CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN \
         UPDATE users SET status = 'changed' WHERE id = NEW.id; END"
    );
    assert!(s.schemas.is_empty() && s.extensions.is_empty() && s.enum_types.is_empty());
    assert!(s.sequences.is_empty() && s.functions.is_empty());
}
