-- The firmware a server boots with: 'bios' or 'uefi'. Servers created before it was recorded booted
-- with BIOS.
ALTER TABLE servers ADD COLUMN firmware TEXT NOT NULL DEFAULT 'bios' CHECK (firmware IN ('bios', 'uefi'));
