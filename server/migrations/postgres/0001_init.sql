-- The change log, the merged current state and the log head, with row-level security.
-- Same columns as the SQLite schema (server/src/store/sqlite.rs); JSON is kept as text, as
-- written, since the server only ever reads it back whole.

-- The newest sequence number. A push takes this row's lock first and holds it until commit,
-- so pushes append one after the other and sequence order is commit order: a reader that has
-- seen seq N has seen every change up to N (a sequence would hand out numbers that commit out
-- of order, and a `seq > cursor` pull would skip the late one forever). Holds no user data.
CREATE TABLE log_head (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq      bigint  NOT NULL
);
INSERT INTO log_head (only_row, seq) VALUES (true, 0);

CREATE TABLE changes (
    seq            bigint  PRIMARY KEY,   -- the sync cursor, from log_head
    event_id       text    NOT NULL UNIQUE,
    app_id         text    NOT NULL,
    tbl            text    NOT NULL,
    record_id      text    NOT NULL,
    author         text    NOT NULL,      -- user id (JWT sub) of the writer
    space_id       text,                  -- NULL = the author's personal space
    op             text    NOT NULL,
    data           text,                  -- JSON object (insert)
    fields         text,                  -- JSON { field: { value, updatedAt } } (update)
    updated_at     text,
    deleted_at     text,
    actor          text,                  -- JSON, stored untouched
    schema_version integer NOT NULL,
    client_id      text    NOT NULL,
    created_at     bigint  NOT NULL       -- unix millis
);
CREATE INDEX changes_app_seq ON changes (app_id, seq);

CREATE TABLE records (
    rid            bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- first-sync position
    app_id         text    NOT NULL,
    tbl            text    NOT NULL,
    record_id      text    NOT NULL,
    author         text    NOT NULL,
    space_id       text,
    state          text    NOT NULL,      -- JSON { field: { v, at, a? } }: merged LWW state
    updated_at     text,                  -- greatest HLC ever applied
    schema_version integer NOT NULL,
    last_seq       bigint  NOT NULL,
    UNIQUE (app_id, tbl, record_id)
);
CREATE INDEX records_app_rid ON records (app_id, rid);

-- Who is asking, as the request's transaction set it with set_config(..., true). Unset or
-- empty is nobody: nobody reads or writes any row, not even of a space.
CREATE FUNCTION mana_current_user() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.current_user_id', true), '') $$;
-- The spaces they are a member of: comma-joined, empty entries dropped.
CREATE FUNCTION mana_current_spaces() RETURNS text[] LANGUAGE sql STABLE AS
$$ SELECT array_remove(string_to_array(current_setting('app.current_user_space_ids', true), ','), '') $$;

-- FORCE: the table owner (the role that ran this migration, usually the server's) is bound too.
ALTER TABLE changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE changes FORCE ROW LEVEL SECURITY;
CREATE POLICY changes_read ON changes FOR SELECT
    USING (mana_current_user() IS NOT NULL
           AND (author = mana_current_user() OR space_id = ANY (mana_current_spaces())));
-- The log is append-only: no UPDATE or DELETE policy, so neither is allowed.
CREATE POLICY changes_append ON changes FOR INSERT
    WITH CHECK (author = mana_current_user());

ALTER TABLE records ENABLE ROW LEVEL SECURITY;
ALTER TABLE records FORCE ROW LEVEL SECURITY;
CREATE POLICY records_read ON records FOR SELECT
    USING (mana_current_user() IS NOT NULL
           AND (author = mana_current_user() OR space_id = ANY (mana_current_spaces())));
CREATE POLICY records_insert ON records FOR INSERT
    WITH CHECK (author = mana_current_user());
CREATE POLICY records_update ON records FOR UPDATE
    USING (author = mana_current_user()) WITH CHECK (author = mana_current_user());
CREATE POLICY records_delete ON records FOR DELETE
    USING (author = mana_current_user());

-- Who wrote a record, and whether an eventId is logged, whoever's they are: a push must refuse
-- a write to another user's record (403, not "new record") and must not log an eventId twice.
-- These two functions are the only readers past the viewer's policies: they raise the
-- transaction-local `app.owner_lookup` flag for their one query (a policy lets it through)
-- and return ids only, never a row's content. (The flag is no stronger a secret than
-- `app.current_user_id`: both are set by the server's own queries. What RLS guards against
-- here is a query that forgets its WHERE, not SQL running as the server's role.)
CREATE FUNCTION mana_owner_lookup() RETURNS boolean LANGUAGE sql STABLE AS
$$ SELECT current_setting('app.owner_lookup', true) = 'on' $$;
CREATE POLICY records_owner_lookup ON records FOR SELECT USING (mana_owner_lookup());
CREATE POLICY changes_owner_lookup ON changes FOR SELECT USING (mana_owner_lookup());

CREATE FUNCTION mana_record_owners(p_app text, p_tbls text[], p_ids text[])
RETURNS TABLE (tbl text, record_id text, author text, space_id text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.owner_lookup', 'on', true);
    RETURN QUERY
        SELECT r.tbl, r.record_id, r.author, r.space_id
        FROM unnest(p_tbls, p_ids) AS k(tbl, id)
        JOIN records r ON r.app_id = p_app AND r.tbl = k.tbl AND r.record_id = k.id;
    PERFORM set_config('app.owner_lookup', '', true);
END $$;

CREATE FUNCTION mana_known_event_ids(p_ids text[])
RETURNS TABLE (event_id text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.owner_lookup', 'on', true);
    RETURN QUERY SELECT c.event_id FROM changes c WHERE c.event_id = ANY (p_ids);
    PERFORM set_config('app.owner_lookup', '', true);
END $$;

-- What changed in a range of the log, as the live streams need it (ids, no content): for a
-- push whose announcement would not fit a NOTIFY payload, and to catch up after the
-- listening connection was lost.
CREATE FUNCTION mana_log_groups(p_after bigint, p_upto bigint)
RETURNS TABLE (app_id text, client_id text, tbl text, author text, space_id text, seq bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('app.owner_lookup', 'on', true);
    RETURN QUERY
        SELECT c.app_id, c.client_id, c.tbl, c.author, c.space_id, max(c.seq)
        FROM changes c WHERE c.seq > p_after AND c.seq <= p_upto
        GROUP BY 1, 2, 3, 4, 5;
    PERFORM set_config('app.owner_lookup', '', true);
END $$;
