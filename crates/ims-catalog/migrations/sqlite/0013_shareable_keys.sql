-- Shareable master keys: whether images encrypted under a key may be shared with other projects (whose
-- members then read the data through the owner's encryption domain). Off unless an admin turns it on.
ALTER TABLE kms_keys ADD COLUMN shareable INTEGER NOT NULL DEFAULT 0 CHECK (shareable IN (0, 1));
