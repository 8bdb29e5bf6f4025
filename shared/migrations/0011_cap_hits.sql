-- Frequency-cap hits, the durable copy of what the Redis cap sets count: one row per
-- recipient admitted by a send that had caps (sends without caps write nothing), naming
-- the cap scopes it counted against ("app:<appKey>", "tag:<tag>"). Redis is rebuilt from
-- these rows after it loses its data (shared/cap_hits.py, `pigeonhole caps rebuild`);
-- the scheduler's purge deletes rows older than the longest cap window + a margin.
CREATE TABLE cap_hits (
    send_job_id  bigint NOT NULL,
    contact_id   text NOT NULL,
    scopes       text[] NOT NULL,
    counted_at   timestamptz NOT NULL,     -- the score of the member in the Redis sets
    PRIMARY KEY (send_job_id, contact_id)  -- a redelivered batch counts once
);
-- Rows arrive in time order, so a BRIN index finds the purge's old rows for a few pages.
CREATE INDEX cap_hits_counted_at ON cap_hits USING brin (counted_at);
