INSERT INTO freshrec_migrations (version, name, checksum, duration_ms)
VALUES (:version, :name, :checksum, :duration_ms)
