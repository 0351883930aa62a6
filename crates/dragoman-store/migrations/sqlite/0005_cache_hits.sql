-- Requests answered from the response cache, and what each hit saved (nano-dollars).
ALTER TABLE usage_records ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN saved_cost_nanos INTEGER NULL;
