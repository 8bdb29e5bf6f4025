-- Device engagement (sync) and the statistics fed from Kafka (publisher).

ALTER TABLE inbox_entries
    ADD COLUMN dismissed_at  timestamptz,
    ADD COLUMN evicted_at    timestamptz;   -- pushed out by the per-contact inbox size cap
CREATE INDEX inbox_entries_expiry ON inbox_entries (expires_at) WHERE expires_at IS NOT NULL;

-- Every engagement event a device reported, once: the event id is the idempotency key.
CREATE TABLE engagement_events (
    event_id     text PRIMARY KEY,
    entry_id     bigint NOT NULL,
    contact_id   text NOT NULL,
    type         text NOT NULL CHECK (type IN ('view', 'click', 'dismiss', 'read', 'delete')),
    counted      boolean NOT NULL,            -- false for a view past maxViews, say
    at           timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Statistics. Consumers are idempotent: an event id is applied once.
CREATE TABLE stats_applied_events (
    event_id    text PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Delivery outcomes per send job: targeted = sum of all, delivered, skipped by reason.
CREATE TABLE stats_outcomes (
    send_job_id  bigint NOT NULL,
    content_id   text NOT NULL,
    outcome      text NOT NULL,               -- 'delivered' or the skip reason
    count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (send_job_id, outcome)
);

-- Engagement per message and type, once: "viewed" counts messages viewed at least once.
CREATE TABLE stats_engagement (
    send_job_id  bigint NOT NULL,
    content_id   text NOT NULL,
    message_id   text NOT NULL,
    type         text NOT NULL,
    first_at     timestamptz NOT NULL,
    PRIMARY KEY (message_id, type)
);
CREATE INDEX stats_engagement_job ON stats_engagement (send_job_id);
CREATE INDEX stats_engagement_content ON stats_engagement (content_id);
CREATE INDEX stats_outcomes_content ON stats_outcomes (content_id);
