-- A version published without a drift reference (a cold start) adopts the first batch it scored as its reference;
-- one it already has is never replaced.
UPDATE model_versions SET reference_sample = CAST(:reference_sample AS jsonb)
WHERE version = :version AND reference_sample IS NULL
