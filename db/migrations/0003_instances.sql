-- How many instances of its current release an app runs (ScaleApp), 1 to 10.
ALTER TABLE applications ADD COLUMN instances integer NOT NULL DEFAULT 1 CHECK (instances BETWEEN 1 AND 10);
