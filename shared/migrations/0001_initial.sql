-- Pigeonhole schema, first cut. PostgreSQL is the system of record.

CREATE TABLE api_tokens (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,          -- sha256 of the secret; the secret is never stored
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE apps (
    app_key                  text PRIMARY KEY,
    name                     text NOT NULL,
    secret                   text NOT NULL,     -- HS256 key for device user tokens
    frequency_limits         jsonb NOT NULL DEFAULT '{}',
    next_sync_after_seconds  int NOT NULL DEFAULT 900
        CHECK (next_sync_after_seconds BETWEEN 0 AND 86400),
    created_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE contents (
    id                        text PRIMARY KEY,
    kind                      text NOT NULL CHECK (kind IN ('inapp', 'inbox')),
    name                      text,
    body                      jsonb NOT NULL,   -- the published payload, as written
    personalization_defaults  jsonb NOT NULL DEFAULT '{}',
    personalization_formulas  jsonb NOT NULL DEFAULT '{}',
    category                  text,
    tags                      text[] NOT NULL DEFAULT '{}',
    ttl_seconds               int CHECK (ttl_seconds > 0),
    created_at                timestamptz NOT NULL DEFAULT now(),
    deleted_at                timestamptz
);
CREATE INDEX contents_tags ON contents USING gin (tags);

CREATE TABLE contacts (
    contact_id     text PRIMARY KEY,
    bucket         smallint NOT NULL,           -- shared.topics.bucket_of(contact_id)
    attributes     jsonb NOT NULL DEFAULT '{}',
    subscriptions  jsonb NOT NULL DEFAULT '{}', -- {category: true|false}
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_bucket ON contacts (bucket, contact_id);

CREATE TABLE send_jobs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('direct', 'contact_source', 'campaign', 'test')),
    content_id         text NOT NULL REFERENCES contents (id),
    app_keys           text[] NOT NULL,
    options            jsonb NOT NULL,          -- shared.events.SendOptions
    status             text NOT NULL DEFAULT 'scheduled'
        CHECK (status IN ('scheduled', 'running', 'paused', 'completed', 'cancelled')),
    scheduled_at       timestamptz NOT NULL DEFAULT now(),
    launched_at        timestamptz,
    batch_size         int NOT NULL DEFAULT 1000 CHECK (batch_size BETWEEN 1 AND 5000),
    pause_ms           int NOT NULL DEFAULT 0 CHECK (pause_ms >= 0),
    -- keyset checkpoint: the last (bucket, contact_id) whose batch Kafka acknowledged
    cursor_bucket      smallint,
    cursor_contact_id  text,
    batches_sent       int NOT NULL DEFAULT 0,
    recipients_sent    bigint NOT NULL DEFAULT 0,
    recipients_total   bigint,
    lease_owner        text,
    lease_until        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz
);
CREATE INDEX send_jobs_due ON send_jobs (scheduled_at) WHERE status IN ('scheduled', 'running');

-- Recipients named in the send itself (POST /channels/push/sends); one row per contact.
CREATE TABLE send_job_recipients (
    send_job_id      bigint NOT NULL REFERENCES send_jobs (id) ON DELETE CASCADE,
    bucket           smallint NOT NULL,
    contact_id       text NOT NULL,
    personalization  jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (send_job_id, bucket, contact_id)
);

CREATE TABLE inbox_entries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    send_job_id   bigint NOT NULL,
    contact_id    text NOT NULL,
    content_id    text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('inapp', 'inbox')),
    app_keys      text[] NOT NULL,
    payload       jsonb NOT NULL,               -- personalized at delivery, ready to serve
    max_views     int NOT NULL DEFAULT 1,
    views         int NOT NULL DEFAULT 0,
    delivered_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    read_at       timestamptz,
    clicked_at    timestamptz,
    deleted_at    timestamptz,
    is_test       boolean NOT NULL DEFAULT false,
    UNIQUE (send_job_id, contact_id)            -- a redelivered batch adds nothing
);
CREATE INDEX inbox_entries_contact ON inbox_entries (contact_id, id DESC);
