-- A contact's attributes are bounded as stored, not only per call: several calls that
-- merge new keys could otherwise grow one document without end. 128 KiB as PostgreSQL
-- prints jsonb (which adds spaces), so any one call within its own 64 KiB limit fits.
-- NOT VALID: rows written before this migration are not scanned; every write is checked.
ALTER TABLE contacts ADD CONSTRAINT contacts_attributes_size
    CHECK (octet_length(attributes::text) <= 131072) NOT VALID;
