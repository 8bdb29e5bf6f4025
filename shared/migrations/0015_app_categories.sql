-- The subscription categories an app declares (PUT /apps/{appKey}/categories): what a
-- device may show and change through GET/PUT /v1/preferences. A list of
-- {"name", "description"} in the operator's order. Delivery does not read it: a contact
-- opted out of a content's category (contacts.subscriptions ->> category = false) is
-- skipped whether or not an app declares that category.
ALTER TABLE apps ADD COLUMN subscription_categories jsonb NOT NULL DEFAULT '[]';
