-- Outbound webhooks (docs/webhooks.md). webhook_endpoints: where an app's events go, and
-- for which event types; the secret signs every request. webhook_outbox: one row per event
-- and endpoint, written before the Kafka offsets are committed, so a crash loses nothing;
-- (endpoint_id, event_id) is unique, so a re-read record adds no second row.
-- status: pending (sent when next_attempt_at is due), done (purged after the retention),
-- dead (gave up: listed and replayed through the API).
CREATE TABLE webhook_endpoints (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_key       text NOT NULL REFERENCES apps (app_key) ON DELETE CASCADE,
    url           text NOT NULL,
    secret        text NOT NULL,
    event_types   text[] NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    max_attempts  int CHECK (max_attempts BETWEEN 1 AND 100),  -- NULL: the setting
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_key);

CREATE TABLE webhook_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         text NOT NULL,
    event            jsonb NOT NULL,           -- the event as the receiver gets it
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'done', 'dead')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (endpoint_id, next_attempt_at, id)
    WHERE status = 'pending';
CREATE INDEX webhook_outbox_dead ON webhook_outbox (endpoint_id, id) WHERE status = 'dead';
CREATE INDEX webhook_outbox_done ON webhook_outbox (updated_at) WHERE status = 'done';
