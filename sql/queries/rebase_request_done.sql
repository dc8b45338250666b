DELETE FROM rebase_requests WHERE consumer = :consumer
