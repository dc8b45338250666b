SELECT user_text, item_text, user_rate, item_rate, user_log_n, item_log_n, item_id,
       COALESCE(history_item_ids, CAST('{}' AS bigint[])) AS history_item_ids,
       COALESCE(user_category_rate, user_rate) AS user_category_rate,
       COALESCE(user_recent_rate, user_rate) AS user_recent_rate,
       COALESCE(user_item_quality, 0.5) AS user_item_quality,
       COALESCE(user_session_rate, user_rate) AS user_session_rate
FROM probe_set ORDER BY id
