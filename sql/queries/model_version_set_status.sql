UPDATE model_versions SET status = :status, reason = :reason WHERE version = :version
