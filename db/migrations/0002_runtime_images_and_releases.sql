-- Runtimes name the images their buildpack builds and runs apps with; `auto` detects the stack.
-- Releases: every successful deployment (and every rollback) is a numbered release.

ALTER TABLE runtimes DROP CONSTRAINT runtimes_kind_check;
ALTER TABLE runtimes ADD CONSTRAINT runtimes_kind_check CHECK (kind IN ('auto', 'node', 'python', 'php', 'dockerfile'));
ALTER TABLE runtimes ADD COLUMN build_image text NOT NULL DEFAULT '';
ALTER TABLE runtimes ADD COLUMN run_image text NOT NULL DEFAULT '';
ALTER TABLE runtimes DROP COLUMN base_image;

-- Production defaults are the official images; `make run`/`make test` build local equivalents
-- under the same names (scripts/base-images.sh) because no registry is reachable there.
UPDATE runtimes SET build_image = 'node:20-bookworm-slim', run_image = 'node:20-bookworm-slim' WHERE slug = 'node';
UPDATE runtimes SET build_image = 'python:3.11-slim-bookworm', run_image = 'python:3.11-slim-bookworm' WHERE slug = 'python';
UPDATE runtimes SET build_image = 'php:8.2-apache-bookworm', run_image = 'php:8.2-apache-bookworm' WHERE slug = 'php';
INSERT INTO runtimes (slug, name, kind) VALUES ('auto', 'Detect from the repository', 'auto');
