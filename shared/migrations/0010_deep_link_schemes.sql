-- The deep-link schemes an app declares (e.g. {myapp}): content may carry links of a
-- scheme some app declares, and a send's apps must each declare the schemes its content
-- uses (services/publisher/url_policy.py). http(s) need no declaring.
ALTER TABLE apps ADD COLUMN deep_link_schemes text[] NOT NULL DEFAULT '{}';
