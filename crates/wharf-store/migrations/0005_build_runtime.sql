-- The language runtime a build used and its version (`python 3.13.5`, `node 24.11.0`), once
-- known; NULL for providers without one and for builds made before wharf recorded it.
ALTER TABLE builds ADD COLUMN runtime TEXT;
