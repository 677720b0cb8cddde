-- Automated Certificate Management: per app on or off; per custom domain, where its ACME
-- certificate stands (`pending`, `cert issued`, `failing`), why the last attempt failed, how many
-- attempts in a row failed and when to try again; and the ACME accounts, one per directory, their
-- credentials sealed under the server's secret key.

ALTER TABLE apps ADD COLUMN acm INTEGER NOT NULL DEFAULT 0;

ALTER TABLE domains ADD COLUMN acm_status TEXT;
ALTER TABLE domains ADD COLUMN acm_status_reason TEXT;
ALTER TABLE domains ADD COLUMN acm_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE domains ADD COLUMN acm_next_attempt TEXT;

CREATE TABLE acme_accounts (
    directory    TEXT PRIMARY KEY,
    credentials  TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
