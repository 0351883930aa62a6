-- How many upstream attempts a request took, and each one's deployment and outcome in order
-- (`deployment:outcome`, comma-separated; the last is the one that answered, or failed last).
ALTER TABLE usage_records ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN attempted TEXT NULL;
