-- TLS certificates the router serves for an app's hostnames (Heroku's SNI endpoints): uploaded,
-- or issued by ACME. The private key is sealed under the server's secret key, as config values
-- are. A certificate serves every hostname of its app it covers, unless a domain names another.

CREATE TABLE certificates (
    id                 TEXT PRIMARY KEY,
    app_id             TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name               TEXT NOT NULL UNIQUE,
    -- 'uploaded' or 'acme'
    source             TEXT NOT NULL,
    certificate_chain  TEXT NOT NULL,
    private_key        TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE INDEX certificates_app ON certificates (app_id, created_at);

-- The certificate a domain is served with, when chosen (`heroku domains:update --cert`);
-- NULL: whichever of the app's certificates covers it.
ALTER TABLE domains ADD COLUMN certificate_id TEXT REFERENCES certificates (id) ON DELETE SET NULL;

-- Plain-HTTP requests for a hostname with a certificate are redirected to HTTPS (1), or served
-- (0: `wharf domains:redirect off`).
ALTER TABLE apps ADD COLUMN https_redirect INTEGER NOT NULL DEFAULT 1;
