//! The event tables silo keeps in a publishing or consuming service's own
//! store, per engine.
//!
//! - `silo_outbox`: what the service published, written in its own
//!   transactions. Every column but `type`, `key` and `payload` has a
//!   default, so a plain `INSERT INTO silo_outbox (type, key, payload)`
//!   from any language publishes. `state` is `pending` until every
//!   consumer (embedded bus) or the stream (nats bus) has the event, then
//!   `sent` (with `retention = "keep"`; the default deletes the row), or
//!   `dead` with `error` saying why (a payload its contract refuses).
//! - `silo_inbox`: what reached the service, one row per event id, with
//!   the CloudEvents 1.0 envelope as columns: `event_id` (`id`), `source`
//!   (the publishing service), `type`, `key` (`subject`), `time` (when it
//!   was published), `specversion`, `datacontenttype`, `dataschema` (the
//!   contract's URI, when the type has one) and `payload` (`data`). A
//!   consumer moves a row to `done` in the transaction of its own writes;
//!   a failure adds to `attempts`, keeps `last_error`, waits until
//!   `next_attempt_at`, and after `max_attempts` the row is `dead`.
//!   `silo_inbox_pending_key` finds a pending event's earlier pending
//!   events of the same key (see [`crate::inbox`]).
//! - `silo_inbox_cursor` (format 2): how far the embedded relay has
//!   delivered from each publisher into this store's inbox, one row per
//!   publishing service, written in the same transaction as the inbox
//!   rows it covers. `position` is the publisher's outbox `txid` (as a
//!   bigint) on PostgreSQL or its `seq` on SQLite; `seq` the outbox `seq`
//!   of the last event delivered (its place within its transaction on
//!   PostgreSQL); `event_id` that event's id, for people; `origin` which
//!   store the positions count in (a PostgreSQL store restored into
//!   another cluster counts transaction ids from elsewhere, so a cursor of
//!   another origin starts over, and the inbox's unique event id keeps
//!   that from duplicating anything).
//! - `silo_events_state`: the format of these tables, so an older silo
//!   refuses a store a newer one has upgraded; on SQLite also the store's
//!   `origin`, a random id given when the tables are made (on PostgreSQL
//!   the origin is the cluster's system identifier and the database's oid,
//!   read live, so a restore into another database is another origin).
//!
//! On PostgreSQL a statement-level trigger on `silo_outbox` sends a
//! notification on the channel `silo_outbox` when a transaction that
//! wrote it commits, so a listening worker delivers at once instead of at
//! its next look.
//!
//! The relay reads the outbox in commit-safe order: by `(txid, seq)` on
//! PostgreSQL (the writing transaction's `xid8`, then an identity that
//! follows the order the transaction inserted its rows in: the ids of
//! events made in the same millisecond differ only in random bits), by
//! `seq` (an `AUTOINCREMENT` rowid, never reused) on SQLite, where writers
//! are serialized.

/// The format these statements create. A store recording a higher one was
/// upgraded by a newer silo and is refused.
pub const FORMAT: i64 = 2;

/// The event tables of a PostgreSQL store, idempotent (`IF NOT EXISTS`).
///
/// PostgreSQL 15 has no `uuidv7()`: `silo_uuid_v7()` builds one from the
/// clock's milliseconds and a random v4 UUID's bytes (version bits set to
/// 7, the variant kept).
pub const POSTGRES: &str = r#"
CREATE OR REPLACE FUNCTION silo_uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE AS $fn$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$fn$;

CREATE TABLE IF NOT EXISTS silo_events_state (
  id integer PRIMARY KEY CHECK (id = 1),
  format integer NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS silo_outbox (
  id uuid PRIMARY KEY DEFAULT silo_uuid_v7(),
  seq bigint GENERATED ALWAYS AS IDENTITY,
  type text NOT NULL CHECK (type <> ''),
  key text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
  sent_at timestamptz,
  error text
);
-- `seq` orders a transaction's events: their ids, when made in the same
-- millisecond, differ only in random bits. Tables made by an earlier
-- build of format 2 lack it and have (txid, id) indexes instead.
ALTER TABLE silo_outbox ADD COLUMN IF NOT EXISTS seq bigint GENERATED ALWAYS AS IDENTITY;
DROP INDEX IF EXISTS silo_outbox_txid_id, silo_outbox_pending;
CREATE INDEX IF NOT EXISTS silo_outbox_txid_seq ON silo_outbox (txid, seq);
CREATE INDEX IF NOT EXISTS silo_outbox_pending_txid_seq ON silo_outbox (txid, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS silo_outbox_dead ON silo_outbox (type) WHERE state = 'dead';

-- At commit of any transaction that wrote the outbox, however it wrote
-- (a plain INSERT from any language, silo_publish, COPY), the worker
-- listening on `silo_outbox` is woken: once per statement, and PostgreSQL
-- folds a transaction's identical notifications into one.
CREATE OR REPLACE FUNCTION silo_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('silo_outbox', '');
  RETURN NULL;
END
$fn$;
CREATE OR REPLACE TRIGGER silo_outbox_notify AFTER INSERT ON silo_outbox
  FOR EACH STATEMENT EXECUTE FUNCTION silo_outbox_notify();

CREATE TABLE IF NOT EXISTS silo_inbox (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  type text NOT NULL,
  source text NOT NULL,
  key text NOT NULL,
  payload jsonb NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}'::jsonb,
  time timestamptz NOT NULL DEFAULT clock_timestamp(),
  specversion text NOT NULL DEFAULT '1.0',
  datacontenttype text NOT NULL DEFAULT 'application/json',
  dataschema text,
  received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
  last_error text,
  next_attempt_at timestamptz,
  done_at timestamptz
);
CREATE INDEX IF NOT EXISTS silo_inbox_state_seq ON silo_inbox (state, seq);
CREATE INDEX IF NOT EXISTS silo_inbox_pending_key ON silo_inbox (source, key, seq) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS silo_inbox_cursor (
  source text PRIMARY KEY,
  origin text NOT NULL DEFAULT '',
  position bigint NOT NULL,
  seq bigint NOT NULL DEFAULT 0,
  event_id text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER TABLE silo_inbox_cursor ADD COLUMN IF NOT EXISTS seq bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION silo_publish(type text, key text, payload jsonb) RETURNS uuid
LANGUAGE sql VOLATILE AS $fn$
  INSERT INTO silo_outbox (type, key, payload) VALUES ($1, $2, $3) RETURNING id
$fn$;
"#;

/// Whether a PostgreSQL store's tables of [`FORMAT`] are complete: those
/// made by an earlier build of format 2 (not released) lack the outbox's
/// and the cursor's `seq`, and [`POSTGRES`] adds them.
pub const COMPLETE_POSTGRES: &str = "SELECT count(*) = 2 FROM pg_attribute \
     WHERE attname = 'seq' AND NOT attisdropped \
       AND attrelid IN (to_regclass('silo_outbox'), to_regclass('silo_inbox_cursor'))";

/// Whether a SQLite store's `silo_inbox_cursor` has `seq` (tables made by
/// an earlier build of format 2 lack it).
pub const CURSOR_SEQ_SQLITE: &str =
    "SELECT EXISTS (SELECT 1 FROM pragma_table_info('silo_inbox_cursor') WHERE name = 'seq')";

/// Adds `seq` to a SQLite cursor table that lacks it. A cursor without it
/// (0) goes on from the start of its position, so events it already
/// delivered may be read again; the inbox's unique event id keeps them
/// out.
pub const ADD_CURSOR_SEQ_SQLITE: &str =
    "ALTER TABLE silo_inbox_cursor ADD COLUMN seq INTEGER NOT NULL DEFAULT 0";

/// A UUID v7 as SQLite text: the clock's milliseconds (48 bits), version
/// 7, 12 random bits, the RFC 9562 variant, 62 random bits.
macro_rules! sqlite_uuid_v7 {
    () => {
        "(lower(substr(printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)), 1, 8) || '-' || \
          substr(printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)), 9, 4) || '-7' || \
          substr(hex(randomblob(2)), 2, 3) || '-' || \
          substr('89ab', 1 + (random() & 3), 1) || substr(hex(randomblob(2)), 2, 3) || '-' || \
          hex(randomblob(6))))"
    };
}

/// A UUID's text, for `GLOB`: an id a service gives its event itself must
/// still be one, since every consumer's inbox (a PostgreSQL one keeps it as
/// `uuid`) and the bus take it as one.
macro_rules! sqlite_uuid_glob {
    () => {
        "[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]"
    };
}

/// The event tables of a SQLite store, idempotent (`IF NOT EXISTS`).
/// JSON columns are text checked with `json_valid`. The outbox's text
/// columns refuse any other storage class (`typeof`): a column's TEXT
/// affinity turns a number into text but keeps a BLOB a BLOB, and a BLOB
/// type or key would be accepted here only to stop the relay later, when
/// it can no longer be refused in the publisher's transaction.
pub const SQLITE: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS silo_events_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  format INTEGER NOT NULL,
  origin TEXT NOT NULL DEFAULT (lower(hex(randomblob(16)))),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS silo_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE DEFAULT ",
    sqlite_uuid_v7!(),
    " CHECK (typeof(id) = 'text' AND id GLOB '",
    sqlite_uuid_glob!(),
    "'),
  type TEXT NOT NULL CHECK (typeof(type) = 'text' AND type <> ''),
  key TEXT NOT NULL CHECK (typeof(key) = 'text'),
  payload TEXT NOT NULL CHECK (typeof(payload) = 'text' AND json_valid(payload)),
  headers TEXT NOT NULL DEFAULT '{}' CHECK (typeof(headers) = 'text' AND json_valid(headers)),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
  sent_at TEXT,
  error TEXT
);
CREATE INDEX IF NOT EXISTS silo_outbox_pending ON silo_outbox (seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS silo_outbox_dead ON silo_outbox (type) WHERE state = 'dead';

CREATE TABLE IF NOT EXISTS silo_inbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  source TEXT NOT NULL,
  key TEXT NOT NULL,
  payload TEXT NOT NULL CHECK (json_valid(payload)),
  headers TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(headers)),
  time TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  specversion TEXT NOT NULL DEFAULT '1.0',
  datacontenttype TEXT NOT NULL DEFAULT 'application/json',
  dataschema TEXT,
  received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
  last_error TEXT,
  next_attempt_at TEXT,
  done_at TEXT
);
CREATE INDEX IF NOT EXISTS silo_inbox_state_seq ON silo_inbox (state, seq);
CREATE INDEX IF NOT EXISTS silo_inbox_pending_key ON silo_inbox (source, key, seq) WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS silo_inbox_cursor (
  source TEXT PRIMARY KEY,
  origin TEXT NOT NULL DEFAULT '',
  position INTEGER NOT NULL,
  seq INTEGER NOT NULL DEFAULT 0,
  event_id TEXT NOT NULL,
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
"
);
