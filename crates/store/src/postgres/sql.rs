//! The schema migrations and every statement the PostgreSQL engine runs (prepared and cached
//! per connection).
//!
//! Times are Unix milliseconds from the database server's clock (`NOW_MS` below), never a
//! replica's, so that every replica agrees on when a key expires.

/// Advisory lock key held (transaction-scoped) while migrations run, so that replicas
/// starting at once apply each migration exactly once. The bytes spell `rolegate`.
pub(super) const MIGRATION_LOCK: i64 = 0x726f_6c65_6761_7465;

/// The table that records which migrations have run.
pub(super) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS rolegate_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// Versioned migrations, applied in order, each once. Never edit a released one: add another.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
    // `COLLATE "C"` makes the primary key's btree order bytewise, so `list` is one index
    // range scan `key >= prefix AND key < prefix_upper` in the order the other engines use.
    "CREATE TABLE rolegate_kv (
        key text COLLATE \"C\" PRIMARY KEY,
        value bytea NOT NULL,
        expires_at bigint NULL
    );
    CREATE INDEX rolegate_kv_expires ON rolegate_kv (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE rolegate_ratelimit (
        key text COLLATE \"C\" PRIMARY KEY,
        tat bigint NOT NULL,
        expires_at bigint NOT NULL,
        allowed boolean NOT NULL
    );
    CREATE INDEX rolegate_ratelimit_expires ON rolegate_ratelimit (expires_at);",
    ),
    (
        2,
        // Several GCRA steps, all or nothing, in one call (ADR 0022). One statement cannot
        // do it: rows it inserts or locks are invisible to its own later reads, so the
        // steps run as three statements inside one function, each with a fresh snapshot.
        //  1. Lock every bucket, in key order (no two callers wait on each other in a
        //     cycle), creating absent ones as expired placeholders: ON CONFLICT waits for a
        //     concurrent step on the row and returns the row that step left.
        //  2. The GCRA arithmetic of `rate_step` on those rows; write them only if every
        //     step is allowed (a refused call leaves expired placeholders for the sweeper).
        //  3. Return, per bucket in input order, the TAT it was read at (raised to the
        //     caller's now) and whether its own step is allowed: the caller recovers each
        //     decision with the shared `gcra` helper.
        // `$1` keys (sorted, distinct), `$2` caller's now (ms), `$3` emission intervals,
        // `$4` interval × burst.
        "CREATE FUNCTION rolegate_rate_steps(
            p_keys text[], p_now bigint, p_interval bigint[], p_span bigint[]
        ) RETURNS TABLE (o_ord bigint, o_tat bigint, o_allowed boolean)
        LANGUAGE plpgsql VOLATILE AS $fn$
        DECLARE
            v_server_now bigint := (floor(extract(epoch FROM statement_timestamp()) * 1000))::bigint;
            v_read bigint[];
            v_all boolean;
        BEGIN
            WITH locked AS (
                INSERT INTO rolegate_ratelimit AS r (key, tat, expires_at, allowed)
                SELECT k, 0, 0, false FROM unnest(p_keys) AS k ORDER BY k COLLATE \"C\"
                ON CONFLICT (key) DO UPDATE SET allowed = r.allowed
                RETURNING r.key AS lk, r.tat AS lt, r.expires_at AS le
            )
            SELECT array_agg(
                       CASE WHEN l.le > v_server_now THEN GREATEST(l.lt, p_now) ELSE p_now END
                       ORDER BY i.ord)
              INTO v_read
              FROM unnest(p_keys) WITH ORDINALITY AS i(ik, ord)
              JOIN locked l ON l.lk = i.ik;
            SELECT bool_and(u.ut + u.ui - u.us <= p_now)
              INTO v_all
              FROM unnest(v_read, p_interval, p_span) AS u(ut, ui, us);
            IF v_all THEN
                UPDATE rolegate_ratelimit AS r
                   SET tat = u.ut + u.ui,
                       expires_at = v_server_now + (u.ut + u.ui - p_now),
                       allowed = true
                  FROM unnest(p_keys, v_read, p_interval) AS u(uk, ut, ui)
                 WHERE r.key = u.uk;
            END IF;
            RETURN QUERY
                SELECT u.ord, u.ut, u.ut + u.ui - u.us <= p_now
                  FROM unnest(v_read, p_interval, p_span) WITH ORDINALITY AS u(ut, ui, us, ord)
                 ORDER BY u.ord;
        END
        $fn$;",
    ),
];

/// Unix milliseconds on the database server at the start of the statement.
macro_rules! now_ms {
    () => {
        "(floor(extract(epoch FROM statement_timestamp()) * 1000))::bigint"
    };
}

pub(super) const SQL_GET: &str = concat!(
    "SELECT value FROM rolegate_kv WHERE key = $1 AND (expires_at IS NULL OR expires_at > ",
    now_ms!(),
    ")"
);

/// Takes the transaction-scoped advisory locks of a commit, in the order given (sorted by
/// the caller, so that two commits never wait on each other in a cycle).
pub(super) const SQL_LOCK: &str =
    "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k";

/// The live values of the keys a commit's conditions name.
pub(super) const SQL_GET_MANY: &str = concat!(
    "SELECT key, value FROM rolegate_kv WHERE key = ANY($1::text[]) AND (expires_at IS NULL OR expires_at > ",
    now_ms!(),
    ")"
);

/// Upserts a batch of distinct keys; `$3` holds each TTL in ms, NULL for none.
pub(super) const SQL_PUT_MANY: &str = concat!(
    "INSERT INTO rolegate_kv (key, value, expires_at)
     SELECT k, v, ",
    now_ms!(),
    " + t FROM unnest($1::text[], $2::bytea[], $3::bigint[]) AS w(k, v, t)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
);

pub(super) const SQL_DELETE_MANY: &str = "DELETE FROM rolegate_kv WHERE key = ANY($1::text[])";

/// A page from the start of a prefix: `key >= $1 AND key < $2`.
pub(super) const SQL_LIST_FROM: &str = concat!(
    "SELECT key, value FROM rolegate_kv
     WHERE key >= $1 AND key < $2 AND (expires_at IS NULL OR expires_at > ",
    now_ms!(),
    ") ORDER BY key LIMIT $3"
);

/// A page that continues after a key inside the prefix: `key > $1 AND key < $2`.
pub(super) const SQL_LIST_AFTER: &str = concat!(
    "SELECT key, value FROM rolegate_kv
     WHERE key > $1 AND key < $2 AND (expires_at IS NULL OR expires_at > ",
    now_ms!(),
    ") ORDER BY key LIMIT $3"
);

/// Every record, expired ones excepted, with its remaining TTL in ms (NULL: none), for
/// `store copy`. Keyset-paged like the listings.
pub(super) const SQL_EXPORT: &str = concat!(
    "SELECT key, value, expires_at - ",
    now_ms!(),
    " FROM rolegate_kv
     WHERE key > $1 AND (expires_at IS NULL OR expires_at > ",
    now_ms!(),
    ") ORDER BY key LIMIT $2"
);

/// The bucket's theoretical arrival time as GCRA reads it: the stored TAT raised to the
/// caller's now, or now when the stored one has expired.
macro_rules! rate_t {
    () => {
        concat!(
            "(CASE WHEN r.expires_at > ",
            now_ms!(),
            " THEN GREATEST(r.tat, $2) ELSE $2 END)"
        )
    };
}

/// One GCRA step in one statement. `$1` key, `$2` caller's now (ms), `$3` emission interval,
/// `$4` interval × burst. An absent bucket is always allowed (its TAT becomes now + interval,
/// expiring one interval later). For an existing row, `t` is the TAT (ignored once expired,
/// in the server's clock) raised to now; the step is allowed when `now >= t + interval -
/// interval × burst`, and then the TAT becomes `t + interval`; a denied step leaves the row as
/// it was. Every SET expression reads the row as it was before the update (`r`), and the
/// row is locked by ON CONFLICT, so concurrent steps on one bucket apply one after another.
/// Returns the stored TAT and whether this step was allowed: the caller recovers the full
/// decision from them with the shared `gcra` helper.
pub(super) const SQL_RATE_STEP: &str = concat!(
    "INSERT INTO rolegate_ratelimit AS r (key, tat, expires_at, allowed)
     VALUES ($1::text, $2::bigint + $3::bigint, ",
    now_ms!(),
    " + $3, true)
     ON CONFLICT (key) DO UPDATE SET
       allowed = (",
    rate_t!(),
    " + $3 - $4 <= $2),
       tat = CASE WHEN ",
    rate_t!(),
    " + $3 - $4 <= $2 THEN ",
    rate_t!(),
    " + $3 ELSE r.tat END,
       expires_at = CASE WHEN ",
    rate_t!(),
    " + $3 - $4 <= $2 THEN ",
    now_ms!(),
    " + (",
    rate_t!(),
    " + $3 - $2) ELSE r.expires_at END
     RETURNING tat, allowed"
);

/// Several GCRA steps, all or nothing (migration 2's function): rows of (TAT as read,
/// allowed on its own), in the order of `$1`.
pub(super) const SQL_RATE_STEPS: &str = "SELECT o_tat, o_allowed \
     FROM rolegate_rate_steps($1::text[], $2::bigint, $3::bigint[], $4::bigint[]) ORDER BY o_ord";

/// Deletes up to `$1` expired rows; rows a commit holds are skipped, never waited for.
pub(super) const SQL_SWEEP_KV: &str = concat!(
    "DELETE FROM rolegate_kv WHERE key IN (
       SELECT key FROM rolegate_kv WHERE expires_at <= ",
    now_ms!(),
    " LIMIT $1 FOR UPDATE SKIP LOCKED)"
);

pub(super) const SQL_SWEEP_RATE: &str = concat!(
    "DELETE FROM rolegate_ratelimit WHERE key IN (
       SELECT key FROM rolegate_ratelimit WHERE expires_at <= ",
    now_ms!(),
    " LIMIT $1 FOR UPDATE SKIP LOCKED)"
);

/// Whether this session could write: false on a hot standby or a read-only database.
pub(super) const SQL_WRITABLE: &str = "SELECT NOT pg_is_in_recovery()
    AND current_setting('transaction_read_only') = 'off'
    AND has_table_privilege('rolegate_kv', 'INSERT, UPDATE, DELETE')";

/// Upper bound used for the empty prefix: every valid key is ASCII below 0x7f.
pub(super) const ALL_KEYS_UPPER: &str = "\u{7f}";
