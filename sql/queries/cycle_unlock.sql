SELECT pg_advisory_unlock(:namespace, hashtext(:consumer))
