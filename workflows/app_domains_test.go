package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// A domain change sets the app's domains, as loaded, on its node's route: no instance is
// started or removed, nothing is rebuilt.
func TestUpdateAppDomainsSetsTheLoadedDomainsOnTheRoute(t *testing.T) {
	env := newTestEnv()
	target := testPlan.AppTarget
	target.Image, target.ReleaseID = "skypanel/app-x:v3", "rel-v3"
	target.Domains = []contract.Domain{{Hostname: "www.example.com"}, {Hostname: "shop.example.org"}}
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	env.OnActivity(nginxActs.SetRouteDomains, mock.Anything, nginx.SetRouteDomainsInput{AppID: testAppID, Domains: target.Domains}).
		Return(nginx.SetRouteDomainsResult{Changed: true}, nil).Once()
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, dockerActs.StartInstance, dockerActs.RemoveInstances, dockerActs.BuildImage, nginxActs.PublishRoute)

	env.ExecuteWorkflow(UpdateAppDomains, AppOperationInput{AppID: testAppID, OperationID: "d0000000-0000-4000-8000-000000000001"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

// An app no node routes (never placed) has nothing to change: its domains come with its first
// route.
func TestUpdateAppDomainsOfAnUnplacedAppAsksNoNode(t *testing.T) {
	env := newTestEnv()
	target := store.AppTarget{AppID: testAppID, OrgID: testPlan.OrgID, Name: "hello", Status: "created",
		Domains: []contract.Domain{{Hostname: "www.example.com"}}}
	env.OnActivity(storeActs.LoadAppTarget, mock.Anything, mock.Anything).Return(target, nil)
	env.OnActivity(storeActs.ReleaseOperation, mock.Anything, mock.Anything).Return(nil).Once()
	forbidActivities(t, env, nginxActs.SetRouteDomains)

	env.ExecuteWorkflow(UpdateAppDomains, AppOperationInput{AppID: testAppID, OperationID: "d0000000-0000-4000-8000-000000000002"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}
