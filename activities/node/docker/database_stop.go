package docker

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// StopDatabase stops the database's container cleanly (SIGTERM, or the image's stop signal;
// DatabaseStopGrace before it is killed) and leaves it, its volume and its data in place: a
// suspension. Its restart policy (unless-stopped) keeps it stopped, the Engine's restarts
// included, until StartDatabase starts it again. A container already stopped, or gone (the
// volume keeps the data; StartDatabase makes a new one), is fine, so a retry finishes the work.
func (a *Activities) StopDatabase(ctx context.Context, in StopDatabaseInput) error {
	if err := a.checkDatabaseRef(in.DatabaseID, in.OrgID); err != nil {
		return err
	}
	name := DatabaseContainerName(in.DatabaseID)
	logger := slog.With("database_id", in.DatabaseID, "org_id", in.OrgID, "container", name)
	info, err := a.Client.ContainerInspect(ctx, name)
	if errdefs.IsNotFound(err) {
		logger.WarnContext(ctx, "no container to stop: the database's volume keeps its data")
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", name, err)
	}
	if !ownedByDatabase(info.Config.Labels, in.DatabaseID) {
		return nameTaken("container", name, in.DatabaseID)
	}
	stopBeat := heartbeat(ctx, "stopping "+name)
	defer stopBeat()
	secs := int(DatabaseStopGrace.Seconds())
	if err := a.Client.ContainerStop(ctx, info.ID, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", name, err)
	}
	logger.InfoContext(ctx, "stopped database container: its volume and data stay", "container_id", info.ID)
	return nil
}
