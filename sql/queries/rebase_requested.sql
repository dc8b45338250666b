SELECT reason FROM rebase_requests WHERE consumer = :consumer
