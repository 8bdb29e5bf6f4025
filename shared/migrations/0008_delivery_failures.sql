-- Recipients skipped because their copy could not be personalized (reason
-- 'personalization_failed'): which merge tag or formula failed and why, for the operator.
-- One row per (send job, contact); a redelivered batch records the same failure once.
CREATE TABLE delivery_failures (
    send_job_id  bigint NOT NULL,
    contact_id   text NOT NULL,
    field        text,                        -- the merge tag or formula; NULL if none to blame
    error        text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (send_job_id, contact_id)
);
CREATE INDEX delivery_failures_at ON delivery_failures (at);
