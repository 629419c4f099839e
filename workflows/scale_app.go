package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/docker"
)

// ScaleAppInput asks for Instances instances of the app's current release (1-10, checked by
// the API, which also took the app's operation lock for this workflow).
type ScaleAppInput struct {
	AppID       string
	OperationID string
	Instances   int
}

// ScaleApp changes how many instances of the current release serve the app. Going up, the new
// instances join nginx's upstream only once every one of them answers; going down, the
// removed ones leave the upstream first (nginx reloads gracefully, finishing requests in
// flight) and are stopped after.
func ScaleApp(ctx workflow.Context, in ScaleAppInput) (err error) {
	defer endOperation(ctx, in.AppID, &err)
	t, err := loadReleased(ctx, in.AppID)
	if err != nil {
		return err
	}
	var list docker.ListInstancesResult
	if err := workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, time.Minute, 0, 5), dockerActs.ListInstances,
		docker.ListInstancesInput{AppID: t.AppID}).Get(ctx, &list); err != nil {
		return err
	}
	var serving []docker.Instance
	for _, inst := range list.Instances {
		if inst.ReleaseID == t.ReleaseID && inst.State == "running" && inst.HostPort > 0 {
			serving = append(serving, inst)
		}
	}

	switch {
	case in.Instances > len(serving):
		names := instanceNames(t.Name, in.OperationID, len(serving)+1, in.Instances-len(serving))
		ports, err := startInstances(ctx, t, t.ReleaseID, t.Image, names, "")
		if err == nil {
			err = publishRoute(ctx, t, t.ReleaseID, append(portsOf(serving), ports...))
		}
		if err != nil {
			removeInstances(ctx, t, names)
			return err
		}
	case in.Instances < len(serving):
		kept := serving[:in.Instances]
		if err := publishRoute(ctx, t, t.ReleaseID, portsOf(kept)); err != nil {
			return err
		}
		// Everything else goes: the extra instances, and any that no longer runs.
		if err := drainInstances(ctx, t, namesOf(kept)); err != nil {
			return err
		}
	}
	return workflow.ExecuteActivity(controlContext(ctx), storeActs.SetInstanceCount, store.SetInstanceCountInput{
		AppID: in.AppID, Instances: in.Instances,
	}).Get(ctx, nil)
}

func portsOf(instances []docker.Instance) []int {
	ports := make([]int, len(instances))
	for i, inst := range instances {
		ports[i] = inst.HostPort
	}
	return ports
}

func namesOf(instances []docker.Instance) []string {
	names := make([]string, len(instances))
	for i, inst := range instances {
		names[i] = inst.Name
	}
	return names
}

// ListAppInstancesInput names the app.
type ListAppInstancesInput struct {
	AppID string
}

// ListAppInstances reads the app's containers from its node (GET .../instances): short, and
// read-only, so it takes no lock.
func ListAppInstances(ctx workflow.Context, in ListAppInstancesInput) (docker.ListInstancesResult, error) {
	t, err := loadTargetFor(ctx, store.LoadAppTargetInput{AppID: in.AppID, ReadOnly: true})
	if err != nil || t.NodeID == "" {
		return docker.ListInstancesResult{}, err
	}
	if err := nodeOffline(t); err != nil {
		return docker.ListInstancesResult{}, err
	}
	var list docker.ListInstancesResult
	err = workflow.ExecuteActivity(nodeContext(ctx, t.NodeID, 30*time.Second, 0, 2), dockerActs.ListInstances,
		docker.ListInstancesInput{AppID: t.AppID}).Get(ctx, &list)
	return list, err
}
