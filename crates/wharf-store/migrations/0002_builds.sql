-- The build stage: uploaded source archives and the builds made from them.

CREATE TABLE sources (
    id          TEXT PRIMARY KEY,
    -- 'pending' until its archive is uploaded and checked, then 'ready'.
    status      TEXT NOT NULL,
    -- sha256 of the uploaded archive, hex; NULL until uploaded.
    sha256      TEXT,
    size        BIGINT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE builds (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    source_id       TEXT NOT NULL REFERENCES sources (id),
    -- What the client said the source is (a commit, a tag); shown, never interpreted.
    source_version  TEXT,
    -- pending → running → succeeded | failed
    status          TEXT NOT NULL,
    provider        TEXT,
    -- The image's manifest digest, once built.
    image_digest    TEXT,
    -- JSON object: process type → command.
    process_types   TEXT,
    -- Why the build failed, in a sentence.
    error           TEXT,
    release_id      TEXT REFERENCES releases (id) ON DELETE SET NULL,
    user_id         TEXT NOT NULL REFERENCES accounts (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE INDEX builds_app_created ON builds (app_id, created_at);
