SELECT user_text, item_text FROM probe_set ORDER BY id
