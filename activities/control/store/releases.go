package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/temporal"

	"github.com/skypanel/skypanel/db"
)

// ErrTypeReleaseUnavailable: the release asked for does not exist or its image was removed.
const ErrTypeReleaseUnavailable = "ReleaseUnavailable"

// DefaultKeepReleaseImages is how many releases' images each app keeps for rollbacks.
const DefaultKeepReleaseImages = 5

// PrepareRollbackInput names the release to restore.
type PrepareRollbackInput struct {
	AppID   string
	Version int
}

// RollbackPlan is the app as it is, and the release to bring back with its config.
type RollbackPlan struct {
	AppTarget
	Image     string
	CommitSHA string
	CPUMillis int
	MemoryMB  int
}

// PrepareRollback reads release vN and the config it ran with.
func (a *Activities) PrepareRollback(ctx context.Context, in PrepareRollbackInput) (RollbackPlan, error) {
	target, err := a.LoadAppTarget(ctx, LoadAppTargetInput{AppID: in.AppID})
	if err != nil {
		return RollbackPlan{}, err
	}
	rel, err := a.Store.ReleaseByVersion(ctx, in.AppID, in.Version)
	if errors.Is(err, db.ErrNotFound) || (err == nil && !rel.ImageAvailable) {
		return RollbackPlan{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("release v%d is not available to roll back to", in.Version), ErrTypeReleaseUnavailable, nil)
	}
	if err != nil {
		return RollbackPlan{}, fmt.Errorf("load release v%d: %w", in.Version, err)
	}
	var cfg db.ReleaseConfig
	if err := json.Unmarshal(rel.Config, &cfg); err != nil {
		return RollbackPlan{}, fmt.Errorf("release v%d config: %w", in.Version, err)
	}
	plan := RollbackPlan{AppTarget: target, Image: rel.Image, CommitSHA: rel.CommitSHA, CPUMillis: cfg.CPUMillis, MemoryMB: cfg.MemoryMB}
	// A release recorded without limits runs with the app's current plan.
	if plan.CPUMillis == 0 || plan.MemoryMB == 0 {
		plan.CPUMillis, plan.MemoryMB = target.CPUMillis, target.MemoryMB
	}
	return plan, nil
}

// CompleteRollbackInput is a restored release now serving.
type CompleteRollbackInput struct {
	AppID       string
	OperationID string
	Version     int
	UserID      string
	Instance    string
	URL         string
}

// CompleteRollback records the rollback as the app's newest release and makes it current.
func (a *Activities) CompleteRollback(ctx context.Context, in CompleteRollbackInput) error {
	if err := a.Store.CompleteRollback(ctx, in.AppID, in.OperationID, in.Version, in.UserID, in.Instance, in.URL); err != nil {
		return fmt.Errorf("record rollback of %s to v%d: %w", in.AppID, in.Version, err)
	}
	return nil
}

// PruneReleaseImagesInput names the app whose old images go.
type PruneReleaseImagesInput struct {
	AppID string
}

// PruneReleaseImagesResult lists the images the node should delete.
type PruneReleaseImagesResult struct {
	Images []string
}

// PruneReleaseImages applies the retention policy: the images of the newest KeepReleaseImages
// releases stay, older ones are marked removed and returned for deletion.
func (a *Activities) PruneReleaseImages(ctx context.Context, in PruneReleaseImagesInput) (PruneReleaseImagesResult, error) {
	keep := a.KeepReleaseImages
	if keep <= 0 {
		keep = DefaultKeepReleaseImages
	}
	images, err := a.Store.PruneReleaseImages(ctx, in.AppID, keep)
	if err != nil {
		return PruneReleaseImagesResult{}, fmt.Errorf("prune release images of %s: %w", in.AppID, err)
	}
	// The pruned releases leave the registry too (their records say so already: a retry would
	// not list them again, so a registry that does not answer is logged, not retried).
	for _, ref := range images {
		if err := a.Registry.DeleteImage(ctx, ref); err != nil {
			slog.WarnContext(ctx, "remove a pruned release's image from the registry", "app_id", in.AppID, "image", ref, "err", err)
		}
	}
	return PruneReleaseImagesResult{Images: images}, nil
}

// CompleteConfigReleaseInput is a config change now serving.
type CompleteConfigReleaseInput struct {
	AppID       string
	OperationID string
	UserID      string
	Description string // what changed, by key name ("Set CANARY, unset OLD"): never a value
	Instance    string
	URL         string
}

// CompleteConfigRelease records the config change as the app's newest release and makes it
// current.
func (a *Activities) CompleteConfigRelease(ctx context.Context, in CompleteConfigReleaseInput) error {
	if err := a.Store.CompleteConfigRelease(ctx, in.AppID, in.OperationID, in.UserID, in.Description, in.Instance, in.URL); err != nil {
		return fmt.Errorf("record config release of %s: %w", in.AppID, err)
	}
	return nil
}
