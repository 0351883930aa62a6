-- Every answered Responses API call, kept so that `previous_response_id` and `item_reference`
-- work whatever the upstream, and so GET/DELETE /v1/responses/{id} can be served.
-- JSON is kept as text: the bytes the size bound counts are the bytes stored, and nothing
-- normalises what the client sent or received.
-- size_bytes sits before the JSON columns: reading it must not walk a large row's overflow
-- pages.
CREATE TABLE IF NOT EXISTS responses (
    id                   TEXT    NOT NULL PRIMARY KEY,
    owner                TEXT    NOT NULL,
    created_ms           BIGINT  NOT NULL,
    expires_ms           BIGINT  NOT NULL,
    size_bytes           BIGINT  NOT NULL,
    model                TEXT    NOT NULL,
    deployment           TEXT    NOT NULL,
    upstream_dialect     TEXT    NOT NULL,
    previous_response_id TEXT    NULL,
    input_items          TEXT    NOT NULL,
    response             TEXT    NOT NULL,
    replay               TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires_ms);
-- Covers the size purge: the running total and the oldest-first walk read this index alone.
CREATE INDEX IF NOT EXISTS responses_created ON responses (created_ms, id, size_bytes);

-- Items by their id (OpenAI's ids are unique; the response that claimed one last holds it),
-- for `item_reference` and for input items sent back with their ids.
CREATE TABLE IF NOT EXISTS response_items (
    item_id     TEXT NOT NULL PRIMARY KEY,
    response_id TEXT NOT NULL,
    item        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS response_items_response ON response_items (response_id);
