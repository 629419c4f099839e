-- docker-compose.yml: the Temporal server's own databases beside SkyPanel's (auto-setup creates
-- their schemas; it needs the role to be able to create them).
ALTER ROLE skypanel CREATEDB;
