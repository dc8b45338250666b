SELECT user_text, item_text, user_rate, item_rate, user_log_n, item_log_n FROM probe_set ORDER BY id
