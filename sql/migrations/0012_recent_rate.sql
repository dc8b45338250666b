-- Models with the recent rate read the user's like-rate over their last few interactions; the probe set keeps it
-- (NULL for older probe sets: those pairs use the user's overall rate, no recent departure from it).
ALTER TABLE probe_set ADD COLUMN user_recent_rate DOUBLE PRECISION;
