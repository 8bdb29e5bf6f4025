-- Contact sources (segments): a static list of contact ids, or an attribute query.
-- A source's members are always contacts that exist: the scheduler and the API express
-- membership as a condition over `contacts` (shared/audience.py), so an
-- audience is "include OR include … AND NOT (exclude OR …)" paged in (bucket, contact_id).

CREATE TABLE contact_sources (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('list', 'query')),
    query       jsonb,                          -- the query as written; compiled on each use
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    CHECK ((kind = 'query') = (query IS NOT NULL))
);

-- Members of a static list, as listed: an id need not be a contact yet; it counts as a
-- member from the moment the contact exists. The primary key is the (source_id,
-- contact_id) index that both the membership EXISTS and the listed count use.
CREATE TABLE contact_source_members (
    source_id   bigint NOT NULL REFERENCES contact_sources (id) ON DELETE CASCADE,
    contact_id  text NOT NULL,
    PRIMARY KEY (source_id, contact_id)
);
