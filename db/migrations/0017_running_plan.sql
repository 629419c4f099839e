-- The plan an app's running containers were started with. A plan change (PUT) applies at the
-- next rollout that replaces the containers (deploy, restart, start, rollback, an environment
-- release); until then usage is billed at the running plan's price, not the new one.
ALTER TABLE applications ADD COLUMN running_plan_id uuid REFERENCES plans (id) ON DELETE SET NULL;
UPDATE applications SET running_plan_id = plan_id WHERE current_release_id IS NOT NULL OR status = 'running';
