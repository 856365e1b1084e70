-- When a feedback row was stored (its created_at is the client's). The retention sweeper re-queues the feedback
-- of its watch window after a restart from this column.
ALTER TABLE feedback ADD COLUMN IF NOT EXISTS inserted_at DateTime64(3, 'UTC') DEFAULT now64(3);
