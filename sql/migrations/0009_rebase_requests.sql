-- A rebase (a candidate trained from the base model on a recent window, competing through the same gate)
-- asked for by hand (`freshrec models rebase`): the next cycle of the consumer that trains takes it, and its
-- commit removes the request in the same transaction.
CREATE TABLE rebase_requests (
    consumer     TEXT PRIMARY KEY,
    reason       TEXT NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
