-- What translation dropped or approximated for a request (one per line), so a
-- request's page can say it long after its log line is gone.
ALTER TABLE usage_records ADD COLUMN dropped TEXT NULL;
