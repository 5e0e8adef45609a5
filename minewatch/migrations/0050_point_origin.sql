-- Who defines a point: the registry file ('registry') or the mine's own upload files (CDDY
-- definitions, 'upload'). Reloading the registry retires the registry's points that left
-- the file, never the points a mine defined itself. New rows default to 'upload' because
-- the registry loader always names itself. Rows that exist already are taken as the
-- registry's (the conservative reading: a reload may retire them, never delete them).
ALTER TABLE points ADD COLUMN defined_by text NOT NULL DEFAULT 'upload'
    CHECK (defined_by IN ('registry', 'upload'));
UPDATE points SET defined_by = 'registry';
