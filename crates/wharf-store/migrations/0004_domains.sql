-- Custom domains: hostnames the router sends to an app besides its default `<app>.<domain>`.
-- A hostname belongs to one app at most.

CREATE TABLE domains (
    id          TEXT PRIMARY KEY,
    app_id      TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    hostname    TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE INDEX domains_app ON domains (app_id, created_at);

-- Why a release failed (its web instances never came up, say); NULL otherwise.
ALTER TABLE releases ADD COLUMN status_reason TEXT;
