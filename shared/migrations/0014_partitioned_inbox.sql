-- inbox_entries becomes hash-partitioned by contact_id: 16 partitions (inbox_entries_p00 ..
-- inbox_entries_p15), each vacuumed, analyzed and purged on its own, and contact_id is the
-- distribution key a sharded PostgreSQL (Citus) would use. Every query sync makes names
-- the contact, so it reads one partition. See docs/scaling.md, "The partitioned inbox".
--
-- The rows are copied in this one transaction (the runner applies a file in one): the
-- old table is locked, reads and writes wait, until it commits (11 s for 645,000 rows
-- measured here), so a large install schedules it (docs/scaling.md: how, and the online
-- way).
--
-- Keys: a partitioned table's unique keys must contain the partition key, so the primary
-- key is (contact_id, id). It also serves what inbox_entries_contact (contact_id, id DESC)
-- served (a btree is read backwards as well as forwards), so that index is not recreated:
-- one index fewer for every entry filed. UNIQUE (send_job_id, contact_id), the record of
-- what was filed (delivery's COPY and ON CONFLICT), and the expiry index stay. Ids are
-- kept and the identity continues where the old one stopped.

LOCK TABLE inbox_entries IN ACCESS EXCLUSIVE MODE;

CREATE TABLE inbox_entries_partitioned (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    send_job_id   bigint NOT NULL,
    contact_id    text NOT NULL,
    content_id    text NOT NULL,
    kind          text NOT NULL CONSTRAINT inbox_entries_kind_check CHECK (kind IN ('inapp', 'inbox')),
    app_keys      text[] NOT NULL,
    payload       jsonb,
    max_views     int NOT NULL DEFAULT 1,
    views         int NOT NULL DEFAULT 0,
    delivered_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    read_at       timestamptz,
    clicked_at    timestamptz,
    deleted_at    timestamptz,
    is_test       boolean NOT NULL DEFAULT false,
    dismissed_at  timestamptz,
    evicted_at    timestamptz,
    merge_values  jsonb,
    platforms     smallint
) PARTITION BY HASH (contact_id);

-- 16, a power of two: one partition can later be split into two of modulus 32 (PostgreSQL
-- accepts moduli that divide one another) without rewriting the others.
DO $$
BEGIN
    FOR r IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE inbox_entries_p%s PARTITION OF inbox_entries_partitioned'
            ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(r::text, 2, '0'), r);
    END LOOP;
END $$;

-- Keys and indexes are built after the copy: one sort per index instead of a row at a time.
SET LOCAL maintenance_work_mem = '128MB';

INSERT INTO inbox_entries_partitioned OVERRIDING SYSTEM VALUE
SELECT id, send_job_id, contact_id, content_id, kind, app_keys, payload, max_views, views,
       delivered_at, expires_at, read_at, clicked_at, deleted_at, is_test, dismissed_at,
       evicted_at, merge_values, platforms
  FROM inbox_entries;

-- The identity continues after the last id handed out (not only the largest kept: an id a
-- device saw on a since deleted entry is never given to another).
SELECT setval(pg_get_serial_sequence('inbox_entries_partitioned', 'id'),
              greatest(s.last_value, m.max_id), s.is_called OR m.max_id IS NOT NULL)
  FROM inbox_entries_id_seq s, (SELECT max(id) AS max_id FROM inbox_entries) m;

DROP TABLE inbox_entries;
ALTER TABLE inbox_entries_partitioned RENAME TO inbox_entries;
ALTER SEQUENCE inbox_entries_partitioned_id_seq RENAME TO inbox_entries_id_seq;

ALTER TABLE inbox_entries ADD CONSTRAINT inbox_entries_pkey PRIMARY KEY (contact_id, id);
-- a redelivered batch adds nothing
ALTER TABLE inbox_entries ADD CONSTRAINT inbox_entries_send_job_id_contact_id_key
    UNIQUE (send_job_id, contact_id);
CREATE INDEX inbox_entries_expiry ON inbox_entries (expires_at) WHERE expires_at IS NOT NULL;

-- No ANALYZE here, where it would hold the lock (6 s of the 17 measured): autovacuum
-- analyzes each new partition within a minute; see docs/scaling.md for the parent.
