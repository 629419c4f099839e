package workflows

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

type deployAppSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env *testsuite.TestWorkflowEnvironment
	// released is how the run ended its operation (ReleaseOperation's input).
	released store.ReleaseOperationInput
}

func TestDeployApp(t *testing.T) { suite.Run(t, new(deployAppSuite)) }

const (
	testAppID        = "3f1c2b8e-0000-4000-8000-000000000001"
	testDeploymentID = "9a7d5e41-0000-4000-8000-000000000002"
	testNodeID       = "node-uuid"
	// testDrainSeconds is the app's drain_seconds: the route change and the removal of old
	// instances must both be given it.
	testDrainSeconds = 25
	testDrain        = testDrainSeconds * time.Second
)

var testPlan = store.DeploymentPlan{
	AppTarget: store.AppTarget{
		AppID: testAppID, OrgID: "org-1", Name: "hello", NodeID: testNodeID,
		Hostname: "hello.apps.localhost", URL: "http://hello.apps.localhost:8088/",
		CPUMillis: 250, MemoryMB: 256, CurrentInstance: "sp-hello-previous", DrainSeconds: testDrainSeconds,
		MaxConnections: 100, ReadTimeoutSeconds: 30,
		RuntimeKind: "auto", RootFS: contract.RootFS{ReadOnly: true, Writable: []string{"/var/cache/app"}},
		StackRootFS: map[string]contract.RootFS{"php": {ReadOnly: true, Writable: []string{"/var/run/apache2"}}},
	},
	GitURL: "https://example.com/hello.git", GitBranch: "main",
	ImageTag: "skypanel/app-" + testAppID + ":" + testDeploymentID,
}

func (s *deployAppSuite) SetupTest() {
	s.SetLogger(quietLogger)
	s.env = s.NewTestWorkflowEnvironment()
	s.env.RegisterActivity(&store.Activities{})
	s.env.RegisterActivity(&gitclone.Activities{})
	s.env.RegisterActivity(&docker.Activities{})
	s.env.RegisterActivity(&nginx.Activities{})
	s.env.OnActivity(storeActs.PrepareDeployment, mock.Anything, mock.Anything).Return(testPlan, nil)
	s.released = store.ReleaseOperationInput{}
	s.env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in store.ReleaseOperationInput) error { s.released = in; return nil }).Once()
	s.env.OnActivity(gitActs.RemoveWorkdir, mock.Anything, mock.Anything).Return(nil).Maybe()
}

func (s *deployAppSuite) AfterTest(_, _ string) { s.env.AssertExpectations(s.T()) }

func (s *deployAppSuite) expectCloneAndBuild(buildErr error) {
	s.env.OnActivity(gitActs.CloneRepository, mock.Anything, mock.MatchedBy(func(in gitclone.CloneInput) bool {
		return in.GitURL == testPlan.GitURL && in.Branch == "main" && in.DeploymentID == testDeploymentID
	})).Return(gitclone.CloneResult{Dir: "/work/builds/x", CommitSHA: "abc123"}, nil)
	s.env.OnActivity(dockerActs.BuildImage, mock.Anything, mock.MatchedBy(func(in docker.BuildImageInput) bool {
		return in.ContextDir == "/work/builds/x" && in.ImageTag == testPlan.ImageTag && in.OrgID == "org-1"
	})).Return(docker.BuildImageResult{ImageID: "sha256:1"}, buildErr)
}

func (s *deployAppSuite) run() error {
	s.env.ExecuteWorkflow(DeployApp, DeployAppInput{AppID: testAppID, DeploymentID: testDeploymentID})
	s.True(s.env.IsWorkflowCompleted())
	return s.env.GetWorkflowError()
}

func (s *deployAppSuite) TestSuccessSwitchesTrafficBeforeRemovingThePreviousInstance() {
	instance := instanceName("hello", testDeploymentID)
	var order []string
	s.expectCloneAndBuild(nil)
	s.env.OnActivity(storeActs.RecordBuild, mock.Anything, store.RecordBuildInput{
		DeploymentID: testDeploymentID, CommitSHA: "abc123", Image: testPlan.ImageTag,
	}).Return(nil).Once()
	s.env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, docker.EnsureNetworkInput{OrgID: "org-1"}).
		Return(docker.EnsureNetworkResult{Network: "skypanel-org-org-1"}, nil)
	s.env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.MatchedBy(func(in docker.StartInstanceInput) bool {
		return in.InstanceName == instance && in.Network == "skypanel-org-org-1" && in.MemoryMB == 256 && in.CPUMillis == 250 && in.Port == AppPort &&
			// the runtime's root filesystem settings, for the node to pick the image's
			in.RuntimeKind == "auto" && reflect.DeepEqual(in.RootFS, testPlan.RootFS) && reflect.DeepEqual(in.StackRootFS, testPlan.StackRootFS)
	})).Return(docker.StartInstanceResult{InstanceName: instance, HostPort: 49153}, nil).Once()
	s.env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.OnActivity(nginxActs.PublishRoute, mock.Anything, nginx.PublishRouteInput{
		AppID: testAppID, Hostname: "hello.apps.localhost", ReleaseID: testDeploymentID, Upstreams: []string{"127.0.0.1:49153"}, Drain: testDrain,
		MaxConnections: 100, ReadTimeout: 30 * time.Second,
	}).Return(func(_ context.Context, _ nginx.PublishRouteInput) error { order = append(order, "route"); return nil }).Once()
	s.env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Keep: []string{instance}, GracePeriod: testDrain}).
		Return(func(_ context.Context, _ docker.RemoveInstancesInput) (docker.RemoveInstancesResult, error) {
			order = append(order, "remove-old")
			return docker.RemoveInstancesResult{Removed: []string{"sp-hello-previous"}}, nil
		}).Once()
	s.env.OnActivity(storeActs.CompleteDeployment, mock.Anything, store.CompleteDeploymentInput{
		AppID: testAppID, DeploymentID: testDeploymentID, Instance: instance, URL: testPlan.URL,
	}).Return(nil).Once()
	s.env.OnActivity(storeActs.PruneReleaseImages, mock.Anything, store.PruneReleaseImagesInput{AppID: testAppID}).
		Return(store.PruneReleaseImagesResult{Images: []string{"skypanel/app-x:old"}}, nil).Once()
	s.env.OnActivity(dockerActs.RemoveImages, mock.Anything, docker.RemoveImagesInput{AppID: testAppID, Images: []string{"skypanel/app-x:old"}}).
		Return(nil).Once()

	s.NoError(s.run())
	var result DeployAppResult
	s.NoError(s.env.GetWorkflowResult(&result))
	s.Equal(instance, result.Instance)
	s.Equal("abc123", result.CommitSHA)
	s.Equal([]string{"route", "remove-old"}, order)
}

func (s *deployAppSuite) TestBuildFailureMarksFailedAndLeavesThePreviousReleaseAlone() {
	s.expectCloneAndBuild(temporal.NewNonRetryableApplicationError("COPY failed: file not found in build context", "BuildFailed", nil))
	var reason string
	s.env.OnActivity(storeActs.FailDeployment, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in store.FailDeploymentInput) error { reason = in.Reason; return nil }).Once()
	forbidActivities(s.T(), s.env, dockerActs.StartInstance, nginxActs.PublishRoute, dockerActs.RemoveInstances, storeActs.CompleteDeployment)

	err := s.run()
	s.Error(err)
	s.Contains(reason, "COPY failed")
}

func (s *deployAppSuite) TestInstanceThatNeverAnswersIsRemovedAndNotRouted() {
	instance := instanceName("hello", testDeploymentID)
	s.expectCloneAndBuild(nil)
	s.env.OnActivity(storeActs.RecordBuild, mock.Anything, mock.Anything).Return(nil)
	s.env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	s.env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.Anything).Return(docker.StartInstanceResult{InstanceName: instance, HostPort: 1}, nil)
	s.env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError("instance exited with code 1 before answering HTTP on $PORT", "InstanceExited", nil))
	s.env.OnActivity(dockerActs.RemoveInstances, mock.Anything, docker.RemoveInstancesInput{AppID: testAppID, Names: []string{instance}}).
		Return(docker.RemoveInstancesResult{Removed: []string{instance}}, nil).Once()
	var reason string
	s.env.OnActivity(storeActs.FailDeployment, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in store.FailDeploymentInput) error { reason = in.Reason; return nil }).Once()
	// Beyond removing the new instance by name, RemoveInstances must not run: draining would
	// take the previous release's instance, which keeps serving.
	forbidActivities(s.T(), s.env, nginxActs.PublishRoute, dockerActs.RemoveInstances, storeActs.CompleteDeployment)

	s.Error(s.run())
	s.Contains(reason, "exited with code 1")
}

func (s *deployAppSuite) TestOfflineNodeFailsWithAReasonSayingSo() {
	s.env.OnActivity(gitActs.CloneRepository, mock.Anything, mock.Anything).
		Return(gitclone.CloneResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, errors.New("not picked up")))
	var reason string
	s.env.OnActivity(storeActs.FailDeployment, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in store.FailDeploymentInput) error { reason = in.Reason; return nil }).Once()

	s.Error(s.run())
	s.True(strings.Contains(reason, "offline"), reason)
}

func TestInstanceNameIsStablePerOperation(t *testing.T) {
	require.Equal(t, instanceName("hello", "9a7d5e41-0000"), instanceName("hello", "9a7d5e41-0000"))
	require.NotEqual(t, instanceName("hello", "9a7d5e41-0000"), instanceName("hello", "1b2c3d4e-0000"))
	require.Equal(t, "sp-hello-9a7d5e41-000", instanceName("hello", "9a7d5e41-0000-4000"))
}

// A cancel (the Update the API sends) while the image builds stops the deploy: the deployment
// is recorded cancelled, the operation ends cancelled, nothing is started or routed. (That the
// node's build process ends is the e2e test's: the SDK's test environment does not wait for a
// cancelled activity.)
func (s *deployAppSuite) TestCancelDuringTheBuildEndsTheDeploymentCancelled() {
	s.env.OnActivity(gitActs.CloneRepository, mock.Anything, mock.Anything).Return(gitclone.CloneResult{Dir: "/work/builds/x", CommitSHA: "abc123"}, nil)
	s.env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	var accepted bool
	s.env.OnActivity(dockerActs.BuildImage, mock.Anything, mock.Anything).Return(func(ctx context.Context, _ docker.BuildImageInput) (docker.BuildImageResult, error) {
		s.env.UpdateWorkflow(CancelDeployUpdate, "cancel-1", &testsuite.TestUpdateCallback{
			OnAccept: func() { accepted = true },
			OnReject: func(err error) { s.Fail("the cancel was refused during the build", err.Error()) },
		})
		select {
		case <-ctx.Done():
			return docker.BuildImageResult{}, ctx.Err()
		case <-time.After(10 * time.Second):
			return docker.BuildImageResult{}, errors.New("the build was never cancelled")
		}
	}).Once()
	var failed store.FailDeploymentInput
	s.env.OnActivity(storeActs.FailDeployment, mock.Anything, mock.Anything).
		Return(func(_ context.Context, in store.FailDeploymentInput) error { failed = in; return nil }).Once()
	forbidActivities(s.T(), s.env, storeActs.RecordBuild, dockerActs.StartInstance, nginxActs.PublishRoute, storeActs.CompleteDeployment)

	err := s.run()
	var canceled *temporal.CanceledError
	s.True(errors.As(err, &canceled), "workflow error %v, want cancelled", err)
	s.True(accepted)
	s.True(failed.Cancelled, "the deployment was recorded %+v, want cancelled", failed)
	s.Equal(store.OperationCancelled, s.released.Status)
}

// Once the rollout switches traffic, a cancel is refused and the deploy completes.
func (s *deployAppSuite) TestCancelIsRefusedOnceTrafficSwitches() {
	s.expectCloneAndBuild(nil)
	s.env.OnActivity(storeActs.RecordBuild, mock.Anything, mock.Anything).Return(nil)
	s.env.OnActivity(dockerActs.EnsureNetwork, mock.Anything, mock.Anything).Return(docker.EnsureNetworkResult{Network: "n"}, nil)
	s.env.OnActivity(dockerActs.StartInstance, mock.Anything, mock.Anything).Return(docker.StartInstanceResult{HostPort: 1}, nil)
	s.env.OnActivity(dockerActs.WaitReady, mock.Anything, mock.Anything).Return(nil)
	var refusal error
	s.env.OnActivity(nginxActs.PublishRoute, mock.Anything, mock.Anything).Return(func(context.Context, nginx.PublishRouteInput) error {
		s.env.UpdateWorkflow(CancelDeployUpdate, "cancel-2", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { refusal = err },
			OnAccept: func() { s.Fail("a cancel was accepted while traffic switched") },
		})
		return nil
	}).Once()
	s.env.OnActivity(dockerActs.RemoveInstances, mock.Anything, mock.Anything).Return(docker.RemoveInstancesResult{}, nil)
	s.env.OnActivity(storeActs.CompleteDeployment, mock.Anything, mock.Anything).Return(nil).Once()
	s.env.OnActivity(storeActs.PruneReleaseImages, mock.Anything, mock.Anything).Return(store.PruneReleaseImagesResult{}, nil)

	s.NoError(s.run())
	s.Equal(store.OperationSucceeded, s.released.Status)
	var appErr *temporal.ApplicationError
	s.True(errors.As(refusal, &appErr) && appErr.Type() == ErrTypeNotCancellable, "refusal %v", refusal)
}
