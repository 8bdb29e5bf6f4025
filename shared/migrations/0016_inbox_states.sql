-- The App Inbox states a device can set besides read and deleted (docs/api.md): archived
-- (out of the inbox view, kept and listed under status=archived) and pinned (listed
-- first). Both are timestamps of the last time the state was set, NULL when unset, so
-- toggling back is one UPDATE and "since when" is known. Metadata-only on the
-- partitioned table: no rewrite.
ALTER TABLE inbox_entries ADD COLUMN archived_at timestamptz;
ALTER TABLE inbox_entries ADD COLUMN pinned_at timestamptz;
