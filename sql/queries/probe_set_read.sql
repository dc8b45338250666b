SELECT user_text, item_text, user_rate, item_rate, user_log_n, item_log_n, item_id,
       COALESCE(history_item_ids, CAST('{}' AS bigint[])) AS history_item_ids
FROM probe_set ORDER BY id
