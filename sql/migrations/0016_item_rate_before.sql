-- An item's like-rate at a point in time, in one place (item_rate_log_fill.sql logs it; user_item_quality.sql and
-- user_item_quality_now.sql count it for rows not logged yet): of the item's clean interactions with a valid label
-- strictly before `until_at` (`exclude_ids`, rows a cycle is about to quarantine, left out), the share positive,
-- shrunk towards 0.5 by `weight` pseudo-events (features.shrunk_rate). The (item_id, occurred_at) index serves it.
-- Executable by every role (PUBLIC), so read-only serving counts the same way.
CREATE FUNCTION item_rate_before(the_item BIGINT, until_at TIMESTAMPTZ, weight DOUBLE PRECISION,
                                 exclude_ids BIGINT[] DEFAULT '{}')
RETURNS DOUBLE PRECISION
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (count(*) FILTER (WHERE x.label = 1) + weight * 0.5) / (count(*) + weight)
    FROM clean_interactions x
    WHERE x.item_id = the_item AND x.occurred_at < until_at AND x.label IN (0, 1) AND x.id <> ALL(exclude_ids)
$$;
