INSERT INTO quarantine (consumer, interaction_id, batch_id, reasons, row_data)
SELECT :consumer, r.interaction_id, :batch_id, r.reasons, r.row_data
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(interaction_id bigint, reasons text[], row_data jsonb)
