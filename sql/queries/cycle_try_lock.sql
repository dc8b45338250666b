SELECT pg_try_advisory_lock(:namespace, hashtext(:consumer))
