-- Delta sync (GET /v1/inbox/changes, docs/api.md "Delta sync"): what changed in a
-- contact's App Inbox since a device's cursor. See docs/architecture.md, "Delta sync".
--
-- change_xid: the transaction that last filed or changed the entry. Added without a default
-- and the default set afterwards: no table rewrite (a volatile default given with ADD
-- COLUMN would rewrite every partition). Entries from before this migration keep NULL,
-- "before delta sync": no cursor is older, so no delta reports them as changed until
-- they change. COPY and INSERT take the default, an UPDATE the trigger's value.
ALTER TABLE inbox_entries ADD COLUMN change_xid xid8;
ALTER TABLE inbox_entries ALTER COLUMN change_xid SET DEFAULT pg_current_xact_id();

-- Every UPDATE that changes something (read, unread, archive, pin, delete, views,
-- eviction, ...) moves the entry to the changing transaction. One that sets what is
-- already there (a repeated read) changes nothing and is not sent again. A row trigger
-- on the partitioned table is on every partition (PostgreSQL 13+), present and future.
CREATE FUNCTION inbox_entries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

CREATE TRIGGER inbox_entries_changed BEFORE UPDATE ON inbox_entries
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION inbox_entries_changed();

-- The App Inbox entries the purge deleted (services/scheduler/purge.py writes them in the
-- statement that deletes), so a device whose cursor predates the deletion hears of it.
-- Partitioned like inbox_entries: a delta reads the one partition of its contact.
CREATE TABLE inbox_tombstones (
    contact_id  text NOT NULL,
    entry_id    bigint NOT NULL,
    app_keys    text[] NOT NULL,
    change_xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    removed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contact_id, entry_id)
) PARTITION BY HASH (contact_id);

DO $$
BEGIN
    FOR r IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE inbox_tombstones_p%s PARTITION OF inbox_tombstones'
            ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(r::text, 2, '0'), r);
    END LOOP;
END $$;

-- Tombstones are written in time order: a BRIN index finds the old ones to purge for a
-- few pages, where a btree would cost every tombstone written a second index entry.
CREATE INDEX inbox_tombstones_removed_at ON inbox_tombstones USING brin (removed_at);

-- The newest transaction whose tombstones were purged (after their retention): a cursor
-- at or below it may have missed a removal, and is answered 410 (refetch without since).
CREATE TABLE inbox_tombstones_horizon (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    purged_xid  xid8 NOT NULL
);
INSERT INTO inbox_tombstones_horizon (purged_xid) VALUES ('0');
