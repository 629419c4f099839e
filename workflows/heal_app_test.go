package workflows

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

const (
	healOp     = "4ea14ea1-0000-4000-8000-000000000000"
	healCommit = "5f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6"
)

// healEnv is an app at 3 instances of rel-1 whose node lists instances; the heal's end is
// captured into *ended.
func healEnv(t *testing.T, instances []docker.Instance, ended *store.ReleaseOperationInput) *testsuite.TestWorkflowEnvironment {
	env := newTestEnv()
	plan := store.HealPlan{AppTarget: testPlan.AppTarget, AppStatus: "running", GitURL: "https://git.example.com/hello.git",
		GitBranch: "main", CommitSHA: healCommit, BuildLogID: "dep-1"}
	plan.Image, plan.ReleaseID, plan.Instances = "skypanel/app-x:v1", "rel-1", 3
	env.OnActivity(storeActs.PrepareHeal, mock.Anything, store.PrepareHealInput{AppID: testAppID}).Return(plan, nil).Once()
	env.OnActivity(dockerActs.ListInstances, mock.Anything, mock.Anything).Return(docker.ListInstancesResult{Instances: instances}, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		*ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	return env
}

func startsOK(env *testsuite.TestWorkflowEnvironment, image string, ports ...int) {
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	for i, port := range ports {
		name := instanceNames("hello", healOp, 1, len(ports))[i]
		env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
			return in.InstanceName == name && in.ReleaseID == "rel-1" && in.Image == image
		})).Return(docker.StartInstanceResult{HostPort: port}, nil).Once()
	}
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Times(len(ports))
}

// One of 3 runs and one crashes: the heal starts 2 from the kept image, routes all 3 serving
// ones, then removes everything else (the crashing one and another release's leftover), and
// says what it did, with the crashing instance's last words.
func TestHealStartsTheMissingInstancesAndReplacesTheCrashingOne(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := healEnv(t, []docker.Instance{
		{Name: "sp-hello-old-1", ReleaseID: "rel-1", State: "running", HostPort: 41000},
		{Name: "sp-hello-old-2", ReleaseID: "rel-1", State: "restarting", Crashing: true, ExitCode: 4, LastOutput: "starting\ngiving up\n"},
		{Name: "sp-hello-older", ReleaseID: "rel-0", State: "exited"},
	}, &ended)
	env.OnActivity(dockerActs.ImagePresent, mock.Anything, docker.ImagePresentInput{AppID: testAppID, Image: "skypanel/app-x:v1"}).Return(true, nil).Once()
	startsOK(env, "skypanel/app-x:v1", 42001, 42002)
	var order []string
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.MatchedBy(func(in nginx.PublishRouteInput) bool {
		return in.ReleaseID == "rel-1" && strings.Join(in.Upstreams, ",") == "127.0.0.1:41000,127.0.0.1:42001,127.0.0.1:42002"
	})).Run(func(mock.Arguments) { order = append(order, "route") }).Return(nil).Once()
	keep := append([]string{"sp-hello-old-1"}, instanceNames("hello", healOp, 1, 2)...)
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Keep: keep, GracePeriod: testDrain}).
		Run(func(mock.Arguments) { order = append(order, "remove") }).Return(docker.RemoveInstancesResult{}, nil).Once()
	forbidActivities(t, env, gitActs.CloneRepository, dockerActs.BuildImage)

	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "the node reported 1 of 3 instances running"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, []string{"route", "remove"}, order)
	require.Equal(t, store.OperationSucceeded, ended.Status)
	require.Contains(t, ended.Reason, "the node reported 1 of 3 instances running; started 2 of 3 instances from the kept image")
	require.Contains(t, ended.Reason, "sp-hello-old-2 (restarting, crashing, exit code 4), last output: giving up")
}

// The node lost the image: the heal rebuilds it under the same tag from the release's commit
// (not the branch's newest), then starts the instances, and says so.
func TestHealRebuildsALostImageFromTheReleasesCommit(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := healEnv(t, nil, &ended)
	env.OnActivity(dockerActs.ImagePresent, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(dockerActs.PullImage, mock.Anything, docker.PullImageInput{AppID: testAppID, Image: "skypanel/app-x:v1"}).Return(false, nil).Once()
	env.OnActivity(gitActs.CloneRepository, mock.Anything, mock.MatchedBy(func(in gitclone.CloneInput) bool {
		return in.Commit == healCommit && in.Branch == "main" && in.DeploymentID == healOp
	})).Return(gitclone.CloneResult{Dir: "/builds/" + healOp, CommitSHA: healCommit}, nil).Once()
	env.OnActivity(dockerActs.BuildImage, mock.Anything, mock.MatchedBy(func(in docker.BuildImageInput) bool {
		return in.ImageTag == "skypanel/app-x:v1" && in.ReleaseID == "rel-1" && in.ContextDir == "/builds/"+healOp
	})).Return(docker.BuildImageResult{}, nil).Once()
	env.OnActivity(gitActs.RemoveWorkdir, mock.Anything, mock.Anything).Return(nil).Once()
	startsOK(env, "skypanel/app-x:v1", 42001, 42002, 42003)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Return(nil).Once()
	// Nothing was left to replace: nothing is removed; the image is the same tag again.
	forbidActivities(t, env, dockerActs.RemoveInstances, storeActs.ReplaceReleaseImage)

	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "the node reported 0 of 3 instances running"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Contains(t, ended.Reason, "started 3 of 3 instances rebuilt from commit 5f1e2d3 (its image was gone from the node and the registry)")
}

// The node lost an image of the platform registry: the heal pulls that digest and builds
// nothing.
func TestHealPullsALostImageFromTheRegistry(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := healEnv(t, nil, &ended)
	env.OnActivity(dockerActs.ImagePresent, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(dockerActs.PullImage, mock.Anything, docker.PullImageInput{AppID: testAppID, Image: "skypanel/app-x:v1"}).Return(true, nil).Once()
	startsOK(env, "skypanel/app-x:v1", 42001, 42002, 42003)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, gitActs.CloneRepository, dockerActs.BuildImage, storeActs.ReplaceReleaseImage)

	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "r"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Contains(t, ended.Reason, "started 3 of 3 instances pulled from the platform registry")
}

// The registry lost the release's digest too: the rebuild is pushed under the release's tag,
// and the release runs the new digest from then on.
func TestHealRebuildOfARegistryImageRecordsItsNewDigest(t *testing.T) {
	const old = "127.0.0.1:5000/skypanel/app-x@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	const fresh = "127.0.0.1:5000/skypanel/app-x@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	var ended store.ReleaseOperationInput
	env := newTestEnv()
	plan := store.HealPlan{AppTarget: testPlan.AppTarget, AppStatus: "running", GitURL: "https://git.example.com/hello.git",
		GitBranch: "main", CommitSHA: healCommit}
	plan.Image, plan.ReleaseID, plan.Instances = old, "rel-1", 1
	env.OnActivity(storeActs.PrepareHeal, mock.Anything, mock.Anything).Return(plan, nil).Once()
	env.OnActivity(dockerActs.ListInstances, mock.Anything, mock.Anything).Return(docker.ListInstancesResult{}, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	env.OnActivity(dockerActs.ImagePresent, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(dockerActs.PullImage, mock.Anything, mock.Anything).Return(false, nil).Once()
	env.OnActivity(gitActs.CloneRepository, mock.Anything, mock.Anything).Return(gitclone.CloneResult{Dir: "/b", CommitSHA: healCommit}, nil).Once()
	env.OnActivity(dockerActs.BuildImage, mock.Anything, mock.MatchedBy(func(in docker.BuildImageInput) bool {
		return in.ImageTag == "127.0.0.1:5000/skypanel/app-x:rel-1" && in.Push
	})).Return(docker.BuildImageResult{ImageRef: fresh}, nil).Once()
	env.OnActivity(gitActs.RemoveWorkdir, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(storeActs.ReplaceReleaseImage, mock.Anything, store.ReplaceReleaseImageInput{AppID: testAppID, Old: old, New: fresh}).Return(nil).Once()
	startsOK(env, fresh, 42001)
	env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Return(nil).Once()

	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "r"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Contains(t, ended.Reason, "rebuilt from commit 5f1e2d3")
}

// Queued behind a deploy that brought the app back whole, the heal finds nothing missing and
// starts nothing; a stopped app is not healed at all.
func TestHealChangesNothingWhenNothingIsMissingOrTheAppIsStopped(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := healEnv(t, []docker.Instance{
		{Name: "a", ReleaseID: "rel-1", State: "running", HostPort: 41000},
		{Name: "b", ReleaseID: "rel-1", State: "running", HostPort: 41001},
		{Name: "c", ReleaseID: "rel-1", State: "running", HostPort: 41002},
	}, &ended)
	forbidActivities(t, env, dockerActs.StartInstance, dockerActs.RemoveInstances, nginxActs.PublishRoute, dockerActs.ImagePresent)
	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "r"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, "r; nothing was missing any more: 3 of 3 instances run", ended.Reason)

	stopped := newTestEnv()
	plan := store.HealPlan{AppTarget: testPlan.AppTarget, AppStatus: "stopped"}
	plan.Image, plan.ReleaseID = "skypanel/app-x:v1", "rel-1"
	stopped.OnActivity(storeActs.PrepareHeal, mock.Anything, mock.Anything).Return(plan, nil).Once()
	stopped.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		ended = args.Get(1).(store.ReleaseOperationInput)
	}).Return(nil).Once()
	forbidActivities(t, stopped, dockerActs.ListInstances, dockerActs.StartInstance)
	stopped.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "r"})
	require.NoError(t, stopped.GetWorkflowError())
	require.Equal(t, "r; nothing healed: the application is stopped", ended.Reason)
}

// New instances that do not come up are removed again, and the heal fails with why: the
// operation's reason, which the back-off counts and a degraded app shows.
func TestAFailedHealRemovesWhatItStarted(t *testing.T) {
	var ended store.ReleaseOperationInput
	env := healEnv(t, nil, &ended)
	env.OnActivity(dockerActs.ImagePresent, mock.Anything, mock.Anything).Return(true, nil).Once()
	env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.Anything).Return(docker.StartInstanceResult{HostPort: 42001}, nil)
	env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("instance sp-hello-x exited with code 3 right after starting; its last output: boom", docker.ErrTypeInstanceExited, nil))
	names := instanceNames("hello", healOp, 1, 3)
	env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Names: names}).
		Return(docker.RemoveInstancesResult{}, nil).Once()
	forbidActivities(t, env, nginxActs.PublishRoute)

	env.ExecuteWorkflow(HealApp, HealAppInput{AppID: testAppID, OperationID: healOp, Reason: "the node reported 0 of 3 instances running"})
	require.Error(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, store.OperationFailed, ended.Status)
	require.Contains(t, ended.Reason, "starting 3 instance(s) from the kept image failed: instance sp-hello-x exited with code 3 right after starting; its last output: boom")
}

// A crashing instance caught right after Docker restarted it shows the crash, not only the new
// run's first line.
func TestDescribeReplacedShowsTheCrashOfARestartedInstance(t *testing.T) {
	got := describeReplaced([]docker.Instance{{Name: "sp-x-1", State: "running", Crashing: true, ExitCode: 0,
		LastOutput: "helloapp listening on :8080\nout of memory (pretend): giving up after 2s\nhelloapp listening on :8080\n"}})
	if !strings.Contains(got, "giving up after 2s") {
		t.Errorf("describeReplaced = %q, want the crash's line", got)
	}
	got = describeReplaced([]docker.Instance{{Name: "sp-x-2", State: "exited", ExitCode: 3, LastOutput: "starting\nboom\n"}})
	if !strings.HasSuffix(got, "last output: boom") {
		t.Errorf("describeReplaced = %q, want the exited instance's last line", got)
	}
}
