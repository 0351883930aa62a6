-- Requests answered from the response cache, and what each hit saved (nano-dollars).
ALTER TABLE usage_records ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE usage_records ADD COLUMN saved_cost_nanos BIGINT NULL;
