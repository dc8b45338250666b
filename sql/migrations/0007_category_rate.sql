-- Models with the category-aware user rate read the user's like-rate in the item's categories; the probe set
-- keeps it (NULL for older probe sets: those pairs use the user's overall rate). The user x category counts
-- join interactions to items by item id, which the primary key serves.
ALTER TABLE probe_set ADD COLUMN user_category_rate DOUBLE PRECISION;
