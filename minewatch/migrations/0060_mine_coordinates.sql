-- Optional WGS-84 position of a mine (registry `longitude` / `latitude`), drawn on the console's map.
ALTER TABLE mines ADD COLUMN IF NOT EXISTS longitude double precision
    CHECK (longitude BETWEEN -180 AND 180);
ALTER TABLE mines ADD COLUMN IF NOT EXISTS latitude double precision
    CHECK (latitude BETWEEN -90 AND 90);
