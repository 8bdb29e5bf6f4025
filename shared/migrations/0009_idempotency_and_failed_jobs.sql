-- Idempotency keys are bound to the request they were first used for: a hash of the
-- operation and its canonical body. The same key with another body is refused (409)
-- naming the send job it belongs to. Rows from before this migration have no hash and
-- keep answering their job.
ALTER TABLE send_jobs ADD COLUMN request_hash text;

-- A send job whose batches can never be produced (larger than Kafka's message size even
-- alone, say) fails, with the error shown to the operator, instead of being re-claimed
-- forever ahead of every later job.
ALTER TABLE send_jobs ADD COLUMN error text;
ALTER TABLE send_jobs DROP CONSTRAINT send_jobs_status_check;
ALTER TABLE send_jobs ADD CONSTRAINT send_jobs_status_check
    CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled',
                      'failed'));
