-- Item popularity over a trailing window (a drift feature) reads the item's recent interactions.
CREATE INDEX interactions_item_time ON interactions (item_id, occurred_at);
