-- Key hygiene (docs/api.md, "API tokens", "App secret rotation", "Rate limits").
-- api_tokens: when each was last used (written at most once a minute per publisher
-- process) and its own management-API rate limit (NULL: the publisher's setting).
-- apps: the secret being retired after a rotation, which keeps verifying device tokens and
-- stream tickets until its deadline or an explicit retire; and the app's own per-device
-- rate limit (NULL: sync's setting). All nullable without defaults: no table rewrite.
ALTER TABLE api_tokens
    ADD COLUMN last_used_at timestamptz,
    ADD COLUMN requests_per_minute int CHECK (requests_per_minute > 0);

ALTER TABLE apps
    ADD COLUMN previous_secret text,
    ADD COLUMN previous_secret_expires_at timestamptz,
    ADD COLUMN device_requests_per_minute int CHECK (device_requests_per_minute > 0),
    ADD CONSTRAINT apps_previous_secret_deadline
        CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));
