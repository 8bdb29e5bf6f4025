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

-- Batch-level idempotency: a SendBatch filed once has its (job, sequence) row, written in
-- the transaction that files its entries. A batch not seen before is filed with COPY; a
-- batch seen before (a redelivery) takes the per-row path, ON CONFLICT DO NOTHING, which
-- reports its recipients as duplicates. Kept as long as entries are (see scheduler purge).
CREATE TABLE filed_batches (
    send_job_id bigint NOT NULL,
    batch_seq   int NOT NULL,
    filed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (send_job_id, batch_seq)
);
CREATE INDEX filed_batches_filed_at ON filed_batches (filed_at);
