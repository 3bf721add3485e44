//! Versioned migrations of the postgres schema, and the application role.
//!
//! `trail_schema.version` holds the schema version; a database whose version
//! is newer than this build knows is refused, as on sqlite. Migrations run
//! in one transaction each, under an advisory lock, so several servers
//! starting at once migrate exactly once.
//!
//! Rules the database enforces (see ARCHITECTURE.md):
//! - trail works as [`APP_ROLE`](crate::APP_ROLE): every transaction starts
//!   with `SET LOCAL ROLE trail_app`, even when the URL names a superuser.
//!   The role may only SELECT and INSERT records, content, tree nodes and
//!   checkpoints: no UPDATE, no DELETE, no TRUNCATE.
//! - Every table holding a tenant's data has row-level security keyed by the
//!   per-transaction setting `trail.tenant`: a query that forgets its tenant
//!   sees no rows, and an insert for another tenant is refused.
//! - Triggers refuse UPDATE, DELETE and TRUNCATE of those tables for anyone
//!   (a second wall against a superuser's slip; a superuser who disables
//!   them is caught by `trail verify`). The one exception, from migration 2:
//!   a DELETE of records or content inside `trail_retire` or
//!   `trail_erase_user`, SECURITY DEFINER functions for the transaction's
//!   tenant only, which mark their transaction in `trail_sanction` (a table
//!   the role cannot write) while they delete.
//! - `rollups` (hourly counts and duration histograms behind stats) is
//!   derived data: the role may UPDATE it, under the same row-level security.
//! - The few lookups that must cross tenants (an API key by its id, whether
//!   any key exists) are SECURITY DEFINER functions that return only that.

use tokio_postgres::Client;
use trail_store::StoreError;

use crate::{pg_error, APP_ROLE};

/// Key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x7472_6169_6c00_0001;

/// The migrations, in order; index + 1 is the version they lead to.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at bigint NOT NULL
);
CREATE TABLE log_heads (
    tenant_id   bigint PRIMARY KEY REFERENCES tenants(id),
    next_seq    bigint NOT NULL CHECK (next_seq >= 0),
    received_at bigint NOT NULL
);
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants(id),
    role        text NOT NULL CHECK (role IN ('ingest', 'read', 'admin')),
    user_id     text,
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    label       text,
    created_at  bigint NOT NULL,
    revoked_at  bigint
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE TABLE settings (
    tenant_id bigint PRIMARY KEY REFERENCES tenants(id),
    body      text NOT NULL
);
CREATE TABLE records (
    tenant_id    bigint NOT NULL,
    seq          bigint NOT NULL,
    id           uuid NOT NULL,
    received_at  bigint NOT NULL,
    ts           bigint NOT NULL,
    type         smallint NOT NULL,
    status       smallint NOT NULL,
    name         text NOT NULL,
    user_id      text,
    model        text,
    provider     text,
    transport    smallint,
    confirmed    boolean,
    dims         text[] COLLATE "C" NOT NULL,
    duration_ms  bigint,
    has_content  boolean NOT NULL,
    envelope     bytea NOT NULL,
    leaf_hash    bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq),
    UNIQUE (tenant_id, id)
);
-- New entries go to the index's pending list, which a background task of
-- every server folds into the index (trail_clean_dims below), off the
-- writer's path; the limit is only a backstop.
CREATE INDEX records_dims ON records USING gin (dims) WITH (gin_pending_list_limit = 65536);
CREATE INDEX records_ts ON records USING brin (tenant_id, ts) WITH (autosummarize = on);
-- Few (type, status) pairs: each insert lands at the right edge of one of
-- a handful of ranges, which keeps this index cheap to maintain.
CREATE INDEX records_type_status ON records (tenant_id, type, status, seq);
CREATE TABLE content (
    tenant_id bigint NOT NULL,
    seq       bigint NOT NULL,
    salt      bytea NOT NULL,
    body      bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE TABLE tree_nodes (
    tenant_id bigint NOT NULL,
    level     smallint NOT NULL,
    idx       bigint NOT NULL,
    hash      bytea NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
);
CREATE TABLE checkpoints (
    tenant_id  bigint NOT NULL,
    size       bigint NOT NULL,
    root       bytea NOT NULL CHECK (length(root) = 32),
    note       text NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (tenant_id, size)
);

CREATE FUNCTION trail_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'trail: table % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON records
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER content_append_only BEFORE UPDATE OR DELETE ON content
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER content_no_truncate BEFORE TRUNCATE ON content
    FOR EACH STATEMENT EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER tree_nodes_append_only BEFORE UPDATE OR DELETE ON tree_nodes
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER tree_nodes_no_truncate BEFORE TRUNCATE ON tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION trail_append_only();

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['log_heads', 'api_keys', 'settings', 'records', 'content', 'tree_nodes', 'checkpoints']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        -- The setting is read in a sub-select, evaluated once per statement
        -- rather than once per row.
        EXECUTE format('CREATE POLICY tenant_rows ON %I USING '
            '(tenant_id = (SELECT NULLIF(current_setting(''trail.tenant'', true), '''')::bigint)) WITH CHECK '
            '(tenant_id = (SELECT NULLIF(current_setting(''trail.tenant'', true), '''')::bigint))', t);
    END LOOP;
END $$;

CREATE FUNCTION trail_key(wanted text)
RETURNS TABLE (key_id text, tenant_id bigint, tenant_name text, role text, user_id text,
               secret_hash bytea, label text, created_at bigint, revoked_at bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT k.key_id, k.tenant_id, t.name, k.role, k.user_id, k.secret_hash, k.label,
           k.created_at, k.revoked_at
    FROM public.api_keys k JOIN public.tenants t ON t.id = k.tenant_id
    WHERE k.key_id = wanted
$$;
CREATE FUNCTION trail_clean_dims() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT gin_clean_pending_list('public.records_dims'::regclass)
$$;
-- The seqs of the transaction's tenant whose dims contain every one of
-- `wanted` and whose columns equal each non-NULL value given, with seq in
-- [lo, hi) and ts in [ts_from, ts_to), newest (or oldest) first, at most k
-- (NULL: all). Row-level security keeps the planner from using the GIN
-- index for the application role (`@>` is not leakproof, so it may not run
-- before the policy), so this function searches as the owner, for the
-- tenant of the `trail.tenant` setting only. EXECUTE plans with the actual
-- values: the unused conditions fold away and the planner picks the index
-- or a walk by seq for each value.
CREATE FUNCTION trail_match(wanted text[], lo bigint, hi bigint, k integer, descending boolean,
    f_type smallint, f_status smallint, f_name text, f_model text, f_provider text,
    f_transport smallint, f_confirmed boolean, ts_from bigint, ts_to bigint)
RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    tenant bigint := NULLIF(current_setting('trail.tenant', true), '')::bigint;
BEGIN
    IF tenant IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT seq FROM public.records WHERE tenant_id = $1 AND dims @> $2 '
        'AND seq >= $3 AND seq < $4 '
        'AND ($6::smallint IS NULL OR type = $6) AND ($7::smallint IS NULL OR status = $7) '
        'AND ($8::text IS NULL OR name = $8) AND ($9::text IS NULL OR model = $9) '
        'AND ($10::text IS NULL OR provider = $10) AND ($11::smallint IS NULL OR transport = $11) '
        'AND ($12::boolean IS NULL OR confirmed = $12) '
        'AND ($13::bigint IS NULL OR ts >= $13) AND ($14::bigint IS NULL OR ts < $14) '
        'ORDER BY seq %s LIMIT $5',
        CASE WHEN descending THEN 'DESC' ELSE 'ASC' END)
        USING tenant, wanted, lo, hi, k, f_type, f_status, f_name, f_model, f_provider,
              f_transport, f_confirmed, ts_from, ts_to;
END $$;
CREATE FUNCTION trail_has_no_keys() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT NOT EXISTS (SELECT 1 FROM public.api_keys)
$$;

REVOKE ALL ON tenants, log_heads, api_keys, settings, records, content, tree_nodes, checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON tenants, records, content, tree_nodes, checkpoints TO trail_app;
GRANT SELECT, INSERT, UPDATE ON log_heads, api_keys, settings TO trail_app;
REVOKE ALL ON FUNCTION trail_key(text), trail_has_no_keys(), trail_clean_dims(),
    trail_match(text[], bigint, bigint, integer, boolean, smallint, smallint, text, text, text, smallint, boolean, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trail_key(text), trail_has_no_keys(), trail_clean_dims(),
    trail_match(text[], bigint, bigint, integer, boolean, smallint, smallint, text, text, text, smallint, boolean, bigint, bigint) TO trail_app;

-- Hourly rollups (derived data, merged by every commit, so not append-only):
-- per (tenant, hour, type, status, name) the record count and a duration
-- histogram in the encoding of trail_store::rollup. hour = ts / 1 h (floor).
CREATE TABLE rollups (
    tenant_id bigint NOT NULL,
    hour      bigint NOT NULL,
    type      smallint NOT NULL,
    status    smallint NOT NULL,
    name      text NOT NULL,
    n         bigint NOT NULL CHECK (n > 0),
    durations bytea NOT NULL,
    PRIMARY KEY (tenant_id, hour, type, status, name)
);
ALTER TABLE rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rollups USING
    (tenant_id = (SELECT NULLIF(current_setting('trail.tenant', true), '')::bigint)) WITH CHECK
    (tenant_id = (SELECT NULLIF(current_setting('trail.tenant', true), '')::bigint));
REVOKE ALL ON rollups FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON rollups TO trail_app;
"#,
    r#"
-- Retention and erasure (issue 6). trail_app keeps no UPDATE or DELETE on
-- records, content, tree_nodes or checkpoints: the only deletions are the
-- ones the SECURITY DEFINER functions below make, for the tenant of the
-- transaction's `trail.tenant` setting only.

-- The guard: a row holding the id of a transaction that a sanctioned
-- function is deleting in. Only the functions write it (trail_app has no
-- privilege on it): each inserts its transaction's id first and deletes it
-- before returning, so a failure rolls the row back with everything else.
CREATE TABLE trail_sanction (txid bigint PRIMARY KEY);
REVOKE ALL ON trail_sanction FROM PUBLIC;

-- DELETE on records and content passes only while the transaction holds a
-- guard row; UPDATE and TRUNCATE still abort for everyone. A statement-level
-- trigger checks once per DELETE, not once per row of a 10,000-row batch.
CREATE FUNCTION trail_sanctioned_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.trail_sanction WHERE txid = txid_current()) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'trail: table % is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER records_append_only ON records;
CREATE TRIGGER records_append_only BEFORE UPDATE ON records
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER records_sanctioned_delete BEFORE DELETE ON records
    FOR EACH STATEMENT EXECUTE FUNCTION trail_sanctioned_delete();
DROP TRIGGER content_append_only ON content;
CREATE TRIGGER content_append_only BEFORE UPDATE ON content
    FOR EACH ROW EXECUTE FUNCTION trail_append_only();
CREATE TRIGGER content_sanctioned_delete BEFORE DELETE ON content
    FOR EACH STATEMENT EXECUTE FUNCTION trail_sanctioned_delete();

-- The next batch a retirement of the tenant takes: [first_seq, end_seq).
-- first_seq is the first remaining seq (the retired leaves are level 0 of
-- tree_nodes, always [0, first_seq)); the batch walks at most p_limit
-- records from there, and ends after the last commit (one received_at per
-- commit, non-decreasing in seq) received before p_cutoff among them, so a
-- first commit larger than p_limit is still taken whole. Empty when the
-- first remaining record is not old enough. One statement, one snapshot.
-- Invoker's rights: trail_app calls it under row-level security to read the
-- batch's rows before trail_retire deletes them.
CREATE FUNCTION trail_retire_range(p_tenant bigint, p_cutoff bigint, p_limit integer)
RETURNS TABLE (first_seq bigint, end_seq bigint)
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    WITH w AS (
        SELECT coalesce((SELECT t.idx + 1 FROM public.tree_nodes t
            WHERE t.tenant_id = p_tenant AND t.level = 0 ORDER BY t.idx DESC LIMIT 1), 0) AS w
    ), last AS (
        SELECT max(s.received_at) AS r FROM (
            SELECT r.received_at FROM public.records r, w
            WHERE r.tenant_id = p_tenant AND r.seq >= w.w ORDER BY r.seq LIMIT greatest(p_limit, 1)
        ) s WHERE s.received_at < p_cutoff
    )
    SELECT w.w, CASE WHEN last.r IS NULL THEN w.w ELSE coalesce(
        (SELECT r.seq FROM public.records r WHERE r.tenant_id = p_tenant AND r.seq >= w.w
            AND r.received_at > last.r ORDER BY r.seq LIMIT 1),
        (SELECT r.seq + 1 FROM public.records r WHERE r.tenant_id = p_tenant
            ORDER BY r.seq DESC LIMIT 1)) END
    FROM w, last
$$;

-- Retires the next batch (trail_retire_range) of the tenant of the
-- transaction's `trail.tenant` setting (any other is refused): keeps the
-- batch's leaf hashes as level 0 of tree_nodes, deletes its content and
-- records, and returns the range. The log head is locked first, so the
-- batch never races a commit of this tenant; a second retirement of the
-- same batch fails on the tree_nodes key instead of retiring twice.
CREATE FUNCTION trail_retire(p_tenant bigint, p_cutoff bigint, p_limit integer)
RETURNS TABLE (first_seq bigint, end_seq bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    lo bigint;
    hi bigint;
    kept bigint;
    deleted bigint;
BEGIN
    IF p_tenant IS DISTINCT FROM NULLIF(current_setting('trail.tenant', true), '')::bigint THEN
        RAISE EXCEPTION 'trail_retire: tenant % is not the tenant of this transaction', p_tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM 1 FROM public.log_heads h WHERE h.tenant_id = p_tenant FOR UPDATE;
    SELECT b.first_seq, b.end_seq INTO lo, hi
        FROM public.trail_retire_range(p_tenant, p_cutoff, p_limit) b;
    IF hi > lo THEN
        INSERT INTO public.trail_sanction (txid) VALUES (txid_current());
        INSERT INTO public.tree_nodes (tenant_id, level, idx, hash)
            SELECT r.tenant_id, 0, r.seq, r.leaf_hash FROM public.records r
            WHERE r.tenant_id = p_tenant AND r.seq >= lo AND r.seq < hi;
        GET DIAGNOSTICS kept = ROW_COUNT;
        DELETE FROM public.content c WHERE c.tenant_id = p_tenant AND c.seq >= lo AND c.seq < hi;
        DELETE FROM public.records r WHERE r.tenant_id = p_tenant AND r.seq >= lo AND r.seq < hi;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        DELETE FROM public.trail_sanction s WHERE s.txid = txid_current();
        IF kept <> hi - lo OR deleted <> hi - lo THEN
            RAISE EXCEPTION 'trail_retire: seqs [%, %) of tenant % are not all present', lo, hi, p_tenant
                USING ERRCODE = 'data_corrupted';
        END IF;
    END IF;
    RETURN QUERY SELECT lo, hi;
END $$;

-- Deletes the content (salt and body) of the records of the transaction's
-- tenant whose user_id is p_user, at most p_limit of them with seq >=
-- p_from, in seq order; the records stay (they read as content_erased).
-- p_dim is the user's entry in the dims index, which finds the records;
-- user_id is checked on each. Returns how many content rows it deleted and
-- the seq to go on from (NULL when done).
CREATE FUNCTION trail_erase_user(p_tenant bigint, p_user text, p_dim text, p_from bigint,
    p_limit integer)
RETURNS TABLE (erased bigint, next_from bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    seqs bigint[];
    deleted bigint;
BEGIN
    IF p_tenant IS DISTINCT FROM NULLIF(current_setting('trail.tenant', true), '')::bigint THEN
        RAISE EXCEPTION 'trail_erase_user: tenant % is not the tenant of this transaction', p_tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- Planned with the actual values, as trail_match is: the index or a
    -- walk by seq, whichever fits this user.
    EXECUTE 'SELECT array_agg(s.seq ORDER BY s.seq) FROM (SELECT r.seq FROM public.records r '
        'WHERE r.tenant_id = $1 AND r.dims @> ARRAY[$2] AND r.user_id = $3 AND r.seq >= $4 '
        'ORDER BY r.seq LIMIT $5) s'
        INTO seqs USING p_tenant, p_dim, p_user, p_from, greatest(p_limit, 1);
    IF seqs IS NULL THEN
        RETURN QUERY SELECT 0::bigint, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO public.trail_sanction (txid) VALUES (txid_current());
    DELETE FROM public.content c WHERE c.tenant_id = p_tenant AND c.seq = ANY(seqs);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    DELETE FROM public.trail_sanction s WHERE s.txid = txid_current();
    RETURN QUERY SELECT deleted, CASE WHEN cardinality(seqs) < greatest(p_limit, 1) THEN NULL
        ELSE seqs[cardinality(seqs)] + 1 END;
END $$;

REVOKE ALL ON FUNCTION trail_retire_range(bigint, bigint, integer),
    trail_retire(bigint, bigint, integer),
    trail_erase_user(bigint, text, text, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trail_retire_range(bigint, bigint, integer),
    trail_retire(bigint, bigint, integer),
    trail_erase_user(bigint, text, text, bigint, integer) TO trail_app;

-- Retirement subtracts the retired records from the rollups (derived data,
-- which trail_app already updates in place); a row whose count reaches zero
-- is deleted.
GRANT DELETE ON rollups TO trail_app;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Creates the application role when it does not exist and makes the
/// connecting user a member, so it may `SET ROLE` to it. Roles are shared by
/// the whole cluster, so two databases migrating at once may race here: a
/// lost race is retried.
async fn ensure_role(client: &Client) -> Result<(), StoreError> {
    let sql = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN \
             CREATE ROLE {APP_ROLE} NOLOGIN; \
           END IF; \
           IF NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN \
             EXECUTE format('GRANT {APP_ROLE} TO %I', current_user); \
           END IF; \
         END $$"
    );
    let mut attempt = 0;
    loop {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 && error.as_db_error().is_some() => {
                attempt += 1;
                tracing::debug!(error = %pg_error(&error), "creating the trail role raced; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            Err(error) => {
                return Err(StoreError::Backend(format!(
                    "cannot create or join the role {APP_ROLE} (the URL's user needs CREATEROLE, \
                     or an administrator must create {APP_ROLE} and grant it to this user): {}",
                    pg_error(&error)
                )))
            }
        }
    }
}

/// The schema version of the database, `None` when it holds no trail schema.
async fn current_version(client: &Client) -> Result<Option<i64>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('trail_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| StoreError::Backend(pg_error(&e)))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version FROM trail_schema", &[])
        .await
        .map_err(|e| StoreError::Backend(pg_error(&e)))?;
    Ok(Some(row.map_or(0, |row| row.get(0))))
}

fn newer(current: i64) -> StoreError {
    StoreError::Incompatible(format!(
        "this database has schema version {current}, written by a newer trail; \
         this build understands versions up to {SCHEMA_VERSION}: upgrade trail"
    ))
}

/// Checks that the database holds a trail schema this build understands,
/// creating nothing.
pub async fn check(client: &Client) -> Result<(), StoreError> {
    match current_version(client).await? {
        None | Some(0) => Err(StoreError::NotFound(
            "a trail store in this database (no trail schema)".into(),
        )),
        Some(current) if current > SCHEMA_VERSION => Err(newer(current)),
        Some(_) => Ok(()),
    }
}

/// Brings the database to [`SCHEMA_VERSION`], or refuses a newer one.
pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let db = |e: tokio_postgres::Error| StoreError::Backend(pg_error(&e));
    ensure_role(client).await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    let outcome = async {
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS trail_schema (version bigint NOT NULL)")
            .await
            .map_err(db)?;
        let current = current_version(client).await?.unwrap_or(0);
        if current > SCHEMA_VERSION {
            return Err(newer(current));
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = index as i64 + 1;
            let tx = client.transaction().await.map_err(db)?;
            tx.batch_execute(sql).await.map_err(db)?;
            tx.execute("DELETE FROM trail_schema", &[])
                .await
                .map_err(db)?;
            tx.execute(
                "INSERT INTO trail_schema (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            tracing::info!(version, "applied postgres migration");
        }
        Ok(())
    }
    .await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db);
    outcome.and(unlocked.map(|_| ()))
}
