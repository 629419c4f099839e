-- A move reserves its destination's memory from the moment the destination is chosen until
-- the app switches node (or its operation ends): two drains moving apps at once to the same
-- node see each other's moves, and never both take its last room.
ALTER TABLE applications ADD COLUMN moving_to uuid REFERENCES nodes (id) ON DELETE SET NULL;
