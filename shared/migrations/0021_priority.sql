-- Priority (docs/api.md, "Priority"): an in-app message's place in the phone home's
-- answer, highest first, then newest. Fixed at delivery from the send's `priority`, else
-- the content's, else 0. Metadata-only on the partitioned table (a constant default): no
-- rewrite. The phone home sorts a contact's pending entries (at most the inbox cap) in
-- memory, so no index changes.
ALTER TABLE inbox_entries ADD COLUMN priority smallint NOT NULL DEFAULT 0
    CHECK (priority BETWEEN 0 AND 10);
