-- Campaigns and send jobs to contact sources are send jobs whose audience is "include
-- sources minus exclude sources", walked by the scheduler in (bucket, contact_id) order.
ALTER TABLE send_jobs DROP CONSTRAINT send_jobs_status_check;
ALTER TABLE send_jobs ADD CONSTRAINT send_jobs_status_check
    CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled'));
ALTER TABLE send_jobs
    ADD COLUMN name             text,        -- campaign name / campaignName
    ADD COLUMN message_name     text,        -- messageName of /channels/push/sendjobs
    ADD COLUMN include_sources  bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN exclude_sources  bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN is_test          boolean NOT NULL DEFAULT false,
    ADD COLUMN cancelled_at     timestamptz;
ALTER TABLE send_jobs ADD CONSTRAINT send_jobs_audience_check
    CHECK (kind IN ('direct', 'test') OR cardinality(include_sources) > 0);
