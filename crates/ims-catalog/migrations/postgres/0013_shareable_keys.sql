-- Shareable master keys: whether images encrypted under a key may be shared with other projects (whose
-- members then read the data through the owner's encryption domain). Off unless an admin turns it on.
-- Mirrors migrations/sqlite/0013.
ALTER TABLE kms_keys ADD COLUMN shareable boolean NOT NULL DEFAULT false;
