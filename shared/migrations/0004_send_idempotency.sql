-- A send request carries an idempotency key (Kafka event_id, or the HTTP Idempotency-Key
-- header): the same key twice yields the same send job, never a second one.
ALTER TABLE send_jobs ADD COLUMN request_id text;
CREATE UNIQUE INDEX send_jobs_request_id ON send_jobs (request_id) WHERE request_id IS NOT NULL;
