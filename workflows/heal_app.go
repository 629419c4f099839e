package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
)

// HealAppInput names the app the convergence check found short of instances, and why (what its
// node reported).
type HealAppInput struct {
	AppID       string
	OperationID string
	Reason      string
}

// HealApp brings a running app back to its instance count after instances vanished (removed
// out of band, a wiped engine) or kept dying. It runs in the app's operation queue like any
// other operation, so it sees the result of whatever ran before it: it counts the current
// release's instances that run now, starts only the missing ones from the kept image (rebuilt
// from the release's commit when the node lost it), routes nginx to all of them once every new
// one answers, and only then removes the dead ones. Its outcome is the operation's reason.
func HealApp(ctx workflow.Context, in HealAppInput) (err error) {
	var outcome string
	defer endOperationWithOutcome(ctx, in.AppID, &err, &outcome)

	var plan store.HealPlan
	if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.PrepareHeal, store.PrepareHealInput{AppID: in.AppID}).Get(ctx, &plan); err != nil {
		return err
	}
	t := plan.AppTarget
	if plan.AppStatus != store.AppRunning || t.Image == "" || t.NodeID == "" {
		outcome = fmt.Sprintf("%s; nothing healed: the application is %s", in.Reason, plan.AppStatus)
		return nil
	}
	if err := nodeOffline(t); err != nil {
		return err
	}
	var list docker.ListInstancesResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, time.Minute, 0, 5), dockerActs.ListInstances,
		docker.ListInstancesInput{AppID: t.AppID}).Get(ctx, &list); err != nil {
		return err
	}
	serving, broken := splitServing(list.Instances, t.ReleaseID)
	missing := instanceCount(t) - len(serving)
	if missing <= 0 {
		outcome = fmt.Sprintf("%s; nothing was missing any more: %d of %d instances run", in.Reason, len(serving), instanceCount(t))
		return nil
	}

	from := "from the kept image"
	var present bool
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, time.Minute, 0, 5), dockerActs.ImagePresent,
		docker.ImagePresentInput{AppID: t.AppID, Image: t.Image}).Get(ctx, &present); err != nil {
		return err
	}
	if !present {
		// The platform registry has the release's exact bytes (its digest); only when it lost
		// them too is the release built again from its own commit.
		var pulled bool
		if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 15*time.Minute, time.Minute, 3), dockerActs.PullImage,
			docker.PullImageInput{AppID: t.AppID, Image: t.Image}).Get(ctx, &pulled); err != nil {
			return err
		}
		from = "pulled from the platform registry (its image was gone from the node)"
		if !pulled {
			rebuilt, err := rebuildRelease(ctx, plan, in.OperationID)
			if err != nil {
				return fmt.Errorf("the release's image %s is gone from the node and the registry, and could not be rebuilt from commit %s: %s",
					t.Image, shortSHA(plan.CommitSHA), failureReason(err))
			}
			if rebuilt != t.Image {
				// A rebuild is new bytes under a new digest: the release runs those from now on.
				if err := workflow.ExecuteActivity(controlContext(ctx), storeActs.ReplaceReleaseImage, store.ReplaceReleaseImageInput{
					AppID: t.AppID, Old: t.Image, New: rebuilt,
				}).Get(ctx, nil); err != nil {
					return err
				}
				t.Image = rebuilt
			}
			from = "rebuilt from commit " + shortSHA(plan.CommitSHA) + " (its image was gone from the node and the registry)"
		}
	}

	names := instanceNames(t.Name, in.OperationID, 1, missing)
	ports, err := startInstances(ctx, t, t.ReleaseID, t.Image, names, "")
	if err == nil {
		err = publishRoute(ctx, t, t.ReleaseID, append(portsOf(serving), ports...))
	}
	if err != nil {
		removeInstances(ctx, t, names)
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s; starting %d instance(s) %s failed: %s",
			in.Reason, missing, from, failureReason(err)), "HealFailed", nil)
	}
	// The new instances serve: the dead and the crashing ones of the app go now.
	if len(broken) > 0 {
		if err := drainInstances(ctx, t, append(namesOf(serving), names...)); err != nil {
			workflow.GetLogger(ctx).Error("remove the instances a heal replaced", "app_id", t.AppID, "error", err)
		}
	}
	outcome = fmt.Sprintf("%s; started %d of %d instances %s", in.Reason, missing, instanceCount(t), from)
	if replaced := describeReplaced(broken); replaced != "" {
		outcome += "; replaced " + replaced
	}
	return nil
}

// splitServing sorts an app's instances into those of the release that run and answer, and
// every other one a heal replaces (exited, dead, crashing, or of another release).
func splitServing(instances []docker.Instance, releaseID string) (serving, broken []docker.Instance) {
	for _, inst := range instances {
		if inst.ReleaseID == releaseID && inst.State == "running" && !inst.Crashing && inst.HostPort > 0 {
			serving = append(serving, inst)
		} else {
			broken = append(broken, inst)
		}
	}
	return serving, broken
}

// describeReplaced names the replaced instances' states and, for one that crashed, its exit
// code and last output: how a crash loop shows in the app's operations.
func describeReplaced(broken []docker.Instance) string {
	var parts []string
	for _, inst := range broken {
		part := inst.Name + " (" + inst.State
		if inst.Crashing {
			part += ", crashing"
		}
		if inst.State != "running" || inst.Crashing {
			part += fmt.Sprintf(", exit code %d", inst.ExitCode)
		}
		part += ")"
		out := lastLines(inst.LastOutput, 1)
		if inst.State == "running" && inst.Crashing {
			// Restarted a moment ago: its last line is the new run's start; the crash that
			// brought it here is just before.
			out = lastLines(inst.LastOutput, 3)
		}
		if out != "" {
			part += ", last output: " + out
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// lastLines is the last n non-empty lines of out, joined by " | ", at most 300 bytes each.
func lastLines(out string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			lines = append(lines, l)
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// rebuildRelease builds the release's image again from the release's own commit, and returns
// the image the release runs from then on: the same tag for an image of no registry, a new
// digest reference (pushed under repository:<release>) for one of the platform registry.
func rebuildRelease(ctx workflow.Context, plan store.HealPlan, operationID string) (string, error) {
	if plan.CommitSHA == "" || plan.GitURL == "" {
		return "", temporal.NewNonRetryableApplicationError("the release has no recorded commit", "NoCommit", nil)
	}
	t := plan.AppTarget
	tag, push := t.Image, false
	if repo, _, digested := strings.Cut(t.Image, "@"); digested {
		tag, push = repo+":"+t.ReleaseID, true
	}
	var source gitclone.CloneResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 10*time.Minute, 30*time.Second, 3), gitActs.CloneRepository, gitclone.CloneInput{
		AppID: t.AppID, DeploymentID: operationID, GitURL: plan.GitURL, Branch: plan.GitBranch, Commit: plan.CommitSHA,
		GitHubToken: plan.GitHubToken, AllowLoopbackHTTP: t.AllowLoopbackGit,
	}).Get(ctx, &source); err != nil {
		return "", err
	}
	var built docker.BuildImageResult
	err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 30*time.Minute, 20*time.Second, 2), dockerActs.BuildImage, docker.BuildImageInput{
		AppID: t.AppID, OrgID: t.OrgID, DeploymentID: operationID, ReleaseID: t.ReleaseID, ContextDir: source.Dir, ImageTag: tag, Push: push,
		Runtime: t.RuntimeKind, BuildImage: t.BuildImage, RunImage: t.RunImage, StackImages: t.StackImages, Env: t.Env,
		MemoryMB: t.MemoryMB, CPUMillis: t.CPUMillis, TimeoutSeconds: t.BuildTimeoutSeconds, DiskMB: t.BuildDiskMB,
	}).Get(ctx, &built)
	removeWorkdir(ctx, t.NodeID, operationID)
	if err != nil {
		return "", err
	}
	if built.ImageRef != "" {
		return built.ImageRef, nil
	}
	return tag, nil
}

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
