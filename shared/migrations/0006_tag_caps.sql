-- Tag caps: at most max_count messages per contact per rolling period_seconds, counted
-- over every send whose content carries the tag.
CREATE TABLE tag_caps (
    tag             text PRIMARY KEY,
    max_count       int NOT NULL CHECK (max_count >= 1),
    period_seconds  int NOT NULL CHECK (period_seconds BETWEEN 1 AND 31 * 86400),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
