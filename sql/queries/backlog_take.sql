DELETE FROM training_backlog WHERE consumer = :consumer AND interaction_id = ANY(CAST(:ids AS bigint[]))
