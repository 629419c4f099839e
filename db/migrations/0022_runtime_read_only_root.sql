-- Whether a runtime's apps run on a read-only root filesystem, and which paths stay writable
-- for them besides /tmp (each a size-bounded tmpfs, empty at every start). The seeded buildpack
-- runtimes were tried with the test suite's sample apps on the local runtime images:
--   node, python: read-only as they are (npm's cache is in /tmp, Python writes no bytecode);
--   php: Apache writes its pid file in its run directory (it does not start without it), its
--        config names its lock directory for file mutexes, and Debian's PHP keeps sessions in
--        /var/lib/php/sessions (session_start() fails without it).
-- dockerfile runs arbitrary images the platform knows nothing about, and auto's own setting
-- covers a repository built from its own Dockerfile: both stay writable. An admin changes any
-- of them in the runtime catalogue (PUT /api/paas/admin/runtimes/{id}).
ALTER TABLE runtimes ADD COLUMN read_only_root boolean NOT NULL DEFAULT false;
ALTER TABLE runtimes ADD COLUMN writable_paths text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(writable_paths) <= 8);

UPDATE runtimes SET read_only_root = true WHERE slug IN ('node', 'python') AND kind = slug;
UPDATE runtimes SET read_only_root = true,
    writable_paths = ARRAY['/var/run/apache2', '/var/lock/apache2', '/var/lib/php/sessions']
    WHERE slug = 'php' AND kind = 'php';
