package store

import (
	"context"
)

// PrepareHealInput names the app a heal brings back to its instance count.
type PrepareHealInput struct {
	AppID string
}

// HealPlan is the app as a heal finds it: its target (current release, instance count, env)
// and where that release was built from, for a rebuild when the node lost its image.
type HealPlan struct {
	AppTarget
	AppStatus string
	GitURL    string
	GitBranch string
	CommitSHA string
	// GitHubToken: the app is connected to GitHub; a rebuild clones with its user's token.
	GitHubToken bool `json:",omitempty"`
	// BuildLogID is the deployment that built the release: a rebuild's output goes to its log.
	BuildLogID string
}

// PrepareHeal reads what a heal needs, once, at its start.
func (a *Activities) PrepareHeal(ctx context.Context, in PrepareHealInput) (HealPlan, error) {
	target, err := a.LoadAppTarget(ctx, LoadAppTargetInput{AppID: in.AppID})
	if err != nil {
		return HealPlan{}, err
	}
	src, err := a.Store.CurrentReleaseSource(ctx, in.AppID)
	if err != nil {
		return HealPlan{}, notRetryable(err)
	}
	github, err := a.Store.AppConnectedToGitHub(ctx, in.AppID)
	if err != nil {
		return HealPlan{}, err
	}
	return HealPlan{AppTarget: target, AppStatus: src.AppStatus, GitURL: src.GitURL, GitBranch: src.GitBranch,
		CommitSHA: src.CommitSHA, GitHubToken: github, BuildLogID: src.BuildLogID}, nil
}

// ReplaceReleaseImageInput names the image a heal rebuilt for the app's release.
type ReplaceReleaseImageInput struct {
	AppID string
	Old   string
	New   string
}

// ReplaceReleaseImage makes the app's releases and deployments that ran Old run New (a heal's
// rebuild when the registry lost the image: new bytes, new digest).
func (a *Activities) ReplaceReleaseImage(ctx context.Context, in ReplaceReleaseImageInput) error {
	return a.Store.ReplaceReleaseImage(ctx, in.AppID, in.Old, in.New)
}
