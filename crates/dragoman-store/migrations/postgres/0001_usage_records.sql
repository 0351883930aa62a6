-- One row per request: the usage record (LiteLLM calls these spend logs).
-- Usage buckets are NULL when the upstream did not report them; NULL is never zero.
CREATE TABLE IF NOT EXISTS usage_records (
    request_id          TEXT    NOT NULL PRIMARY KEY,
    started_at_ms       BIGINT  NOT NULL,
    principal           TEXT    NOT NULL,
    client_dialect      TEXT    NOT NULL,
    upstream_dialect    TEXT    NULL,
    model               TEXT    NOT NULL,
    deployment          TEXT    NULL,
    provider_model      TEXT    NULL,
    stream              BOOLEAN NOT NULL,
    outcome             TEXT    NOT NULL,
    status              INTEGER NOT NULL,
    latency_ms          BIGINT  NOT NULL,
    ttft_ms             BIGINT  NULL,
    input_uncached      BIGINT  NULL,
    cache_read          BIGINT  NULL,
    cache_write         BIGINT  NULL,
    cache_write_5m      BIGINT  NULL,
    cache_write_1h      BIGINT  NULL,
    output              BIGINT  NULL,
    reasoning           BIGINT  NULL,
    web_search_requests BIGINT  NULL,
    web_fetch_requests  BIGINT  NULL,
    usage_estimated     BOOLEAN NOT NULL,
    cost_nanos          BIGINT  NULL
);

-- The spend API filters by time range, alone or with a model or a principal.
CREATE INDEX IF NOT EXISTS usage_records_started_at ON usage_records (started_at_ms);
CREATE INDEX IF NOT EXISTS usage_records_model_started_at ON usage_records (model, started_at_ms);
CREATE INDEX IF NOT EXISTS usage_records_principal_started_at ON usage_records (principal, started_at_ms);
