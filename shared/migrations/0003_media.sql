-- Uploaded images (App Inbox image and logo), served back by the publisher at /media/{id}.
CREATE TABLE media (
    id            text PRIMARY KEY,
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png')),
    size_bytes    int NOT NULL,
    sha256        bytea NOT NULL,
    data          bytea NOT NULL,
    width         int,
    height        int,
    created_at    timestamptz NOT NULL DEFAULT now()
);
