-- Who each request is charged to: the virtual key (its SHA-256, never the key), its team and
-- user, and the end user the request named. Spend per key, team and user is summed from here.
ALTER TABLE usage_records ADD COLUMN api_key TEXT NULL;
ALTER TABLE usage_records ADD COLUMN key_alias TEXT NULL;
ALTER TABLE usage_records ADD COLUMN team_id TEXT NULL;
ALTER TABLE usage_records ADD COLUMN user_id TEXT NULL;
ALTER TABLE usage_records ADD COLUMN end_user TEXT NULL;
-- Partial: requests made without a key (or without a team or user) cost no index upkeep.
CREATE INDEX IF NOT EXISTS usage_records_api_key ON usage_records (api_key, started_at_ms) WHERE api_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_records_team_id ON usage_records (team_id, started_at_ms) WHERE team_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS usage_records_user_id ON usage_records (user_id, started_at_ms) WHERE user_id IS NOT NULL;

-- Keys, teams and users as JSON documents: the gateway owns their fields, the store only keeps
-- them. A deletion is a tombstone (deleted, updated_ms moved on) so other instances polling
-- by updated_ms see it too.
CREATE TABLE IF NOT EXISTS tenancy (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS tenancy_updated ON tenancy (updated_ms);
