-- wharf's first schema. Written in the SQL both SQLite and PostgreSQL accept, so one set of
-- migrations serves both: TEXT ids (UUIDs) and timestamps (RFC 3339, UTC, `Z`), BIGINT integers
-- and 0/1 flags.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    email       TEXT NOT NULL UNIQUE,
    name        TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    description   TEXT NOT NULL,
    -- sha256 of the secret, hex; the secret itself is never stored.
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    revoked_at    TEXT
);

CREATE TABLE apps (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    owner_id     TEXT NOT NULL REFERENCES accounts (id),
    maintenance  BIGINT NOT NULL DEFAULT 0,
    build_stack  TEXT NOT NULL,
    -- The last release version handed out. Bumped in the transaction that inserts a release, so
    -- versions are never reused, even after old releases are deleted.
    release_seq  BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE config_vars (
    app_id  TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);

CREATE TABLE releases (
    id            TEXT PRIMARY KEY,
    app_id        TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version       BIGINT NOT NULL,
    description   TEXT NOT NULL,
    status        TEXT NOT NULL,
    -- The config vars of this release, as a JSON object; immutable like the release.
    config        TEXT NOT NULL,
    -- The build image (OCI manifest digest); NULL until the app's first build.
    image_digest  TEXT,
    user_id       TEXT NOT NULL REFERENCES accounts (id),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (app_id, version)
);
