-- The run stage: how many instances of each process type an app runs, and how.

CREATE TABLE formations (
    id             TEXT PRIMARY KEY,
    app_id         TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    process_type   TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    -- A dyno size name (`standard-1x`) or a memory size (`512M`); sets the memory limit.
    size           TEXT NOT NULL,
    -- Overrides the release's command for this type; NULL runs the Procfile's.
    command        TEXT,
    -- When set, a web instance is up only once GET <health_path> answers 2xx/3xx.
    health_path    TEXT,
    stop_signal    TEXT NOT NULL,
    grace_seconds  BIGINT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (app_id, process_type)
);

-- The process types (type → command) of a release's image, copied from its build, so a release
-- says what it runs without opening the image.
ALTER TABLE releases ADD COLUMN process_types TEXT;
