-- An inbox entry keeps what makes it this recipient's, not a rendered copy: the resolved
-- merge-tag values (fixed at launch) and the content it refers to (contents are immutable
-- once published, and a deleted content keeps its body), rendered by sync. A row is about
-- a tenth of a rendered payload, which is what fan-out pays per recipient.
-- ``payload`` stays for the rows filed before this migration, and for contents whose URLs
-- depend on personalization (their safety is checked on the rendered URL at delivery).
ALTER TABLE inbox_entries ALTER COLUMN payload DROP NOT NULL;
ALTER TABLE inbox_entries ADD COLUMN merge_values jsonb;      -- NULL: the content uses no tag
-- In-app entries filed by value: the platforms the content has a template for, as bits
-- (gcm 1, apns 2, web 4), so sync picks a platform's messages without reading contents.
ALTER TABLE inbox_entries ADD COLUMN platforms smallint;
