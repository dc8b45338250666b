SELECT version, name, checksum, applied_at FROM freshrec_migrations ORDER BY version
