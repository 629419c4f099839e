package apiserver

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"go.temporal.io/sdk/client"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/operations"
	"github.com/skypanel/skypanel/workflows"
)

type scaleInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body struct {
		Instances int `json:"instances" minimum:"1" maximum:"10" doc:"How many instances of the current release serve the app (1-10)"`
	}
}

type instanceView struct {
	Name      string    `json:"name"`
	Container string    `json:"container_id"`
	ReleaseID string    `json:"release_id"`
	State     string    `json:"state" doc:"running, restarting, exited, ... or crashing: it keeps dying (see exit_code and last_output)"`
	Health    string    `json:"health" enum:"healthy,unhealthy,down" doc:"healthy: it answered HTTP on its port when listed; unhealthy: running but not answering; down: not running"`
	Current   bool      `json:"current" doc:"runs the current release"`
	Restarts  int       `json:"restarts"`
	ExitCode  int       `json:"exit_code"`
	StartedAt time.Time `json:"started_at"`
	// LastOutput is the app's last output when the instance is not running or keeps crashing.
	LastOutput string `json:"last_output,omitempty"`
}

func (s *Server) registerInstances() {
	huma.Register(s.api, s.op("scale-application", http.MethodPost, "/api/paas/applications/{id}/scale",
		"Run 1-10 instances of the current release; nginx balances across the healthy ones", "applications", http.StatusAccepted, false),
		func(ctx context.Context, in *scaleInput) (*operationOutput, error) {
			if err := s.store.CheckRoomToScale(ctx, principal(ctx).OrgID, in.ID, in.Body.Instances); err != nil {
				return nil, s.problem(ctx, "application", err)
			}
			if err := s.requireFundsFor(ctx, in.ID, in.Body.Instances); err != nil {
				return nil, err
			}
			return s.enqueue(ctx, operations.Request{AppID: in.ID, Kind: db.OpScale, Instances: in.Body.Instances})
		})
	huma.Register(s.api, s.op("list-instances", http.MethodGet, "/api/paas/applications/{id}/instances",
		"The application's containers on its node, with their state", "applications", 0, false),
		s.listInstances)
}

// instancesOutput is the app's instances as its node last answered, and when.
type instancesOutput struct {
	Body struct {
		Items []instanceView `json:"items"`
		AsOf  time.Time      `json:"as_of" doc:"When the node answered: a listing is asked of the node at most every few seconds per app, and answered from that in between"`
		Age   float64        `json:"age_seconds" doc:"How old the listing is, in seconds"`
	}
}

// instancesCacheFor is how long a node's listing of an app's instances answers the API's calls:
// a dashboard polling every second, or a script in a loop, starts one workflow per app in this
// time, not one per call.
const instancesCacheFor = 3 * time.Second

// instanceListings caches, per app, the node's last listing, and lets one call at a time ask
// the node: the others wait for its answer.
type instanceListings struct {
	mu       sync.Mutex
	byApp    map[string]*instanceListing
	lastTrim time.Time // old listings are dropped at most once a minute, not on every call
}

type instanceListing struct {
	mu   sync.Mutex // held while the node is asked
	at   time.Time
	mark string // the app's state mark the listing was made under (db.AppStateMark)
	list contract.ListInstancesResult
}

func (c *instanceListings) entry(appID string, now time.Time) *instanceListing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byApp == nil {
		c.byApp = map[string]*instanceListing{}
	}
	if now.Sub(c.lastTrim) > time.Minute {
		c.lastTrim = now
		for id, e := range c.byApp {
			if id != appID && e.mu.TryLock() { // one being asked now is kept
				if now.Sub(e.at) > time.Minute {
					delete(c.byApp, id)
				}
				e.mu.Unlock()
			}
		}
	}
	e, ok := c.byApp[appID]
	if !ok {
		e = &instanceListing{}
		c.byApp[appID] = e
	}
	return e
}

// listInstances answers the node's listing of the app's containers: from the cache when it is
// recent, otherwise asked through a short workflow (every machine step is an activity on the
// node's queue).
func (s *Server) listInstances(ctx context.Context, in *idPath) (*instancesOutput, error) {
	app, err := s.store.GetApplication(ctx, principal(ctx).OrgID, in.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	out := &instancesOutput{}
	if app.NodeID == nil {
		out.Body.Items, out.Body.AsOf = []instanceView{}, time.Now()
		return out, nil
	}
	// An operation that started or ended since the listing (a scale, a heal, a deploy) makes
	// it stale at once; what changes on the node alone (a container's restarts) shows within
	// instancesCacheFor.
	mark, err := s.store.AppStateMark(ctx, app.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	e := s.instances.entry(app.ID, time.Now())
	e.mu.Lock()
	if time.Since(e.at) > instancesCacheFor || e.mark != mark {
		list, err := s.askInstances(ctx, app.ID)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		e.list, e.at, e.mark = list, time.Now(), mark
	}
	list, at := e.list, e.at
	e.mu.Unlock()

	target, err := s.store.AppTargetByID(ctx, app.ID)
	if err != nil {
		return nil, s.problem(ctx, "application", err)
	}
	views := make([]instanceView, 0, len(list.Instances))
	for _, inst := range list.Instances {
		state := inst.State
		if inst.Crashing {
			state = "crashing"
		}
		health := "down"
		if inst.State == "running" {
			health = "unhealthy"
			if inst.Healthy {
				health = "healthy"
			}
		}
		views = append(views, instanceView{
			Name: inst.Name, Container: inst.ContainerID, ReleaseID: inst.ReleaseID, State: state, Health: health, LastOutput: inst.LastOutput,
			Current:  inst.ReleaseID != "" && inst.ReleaseID == target.ReleaseID,
			Restarts: inst.Restarts, ExitCode: inst.ExitCode, StartedAt: inst.StartedAt,
		})
	}
	out.Body.Items, out.Body.AsOf, out.Body.Age = views, at, time.Since(at).Round(time.Millisecond).Seconds()
	return out, nil
}

// askInstances runs ListAppInstances for the app and waits for the node's answer.
func (s *Server) askInstances(ctx context.Context, appID string) (contract.ListInstancesResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.OperationWorkflowID("instances", appID, uuid.NewString()),
		TaskQueue:                sptemporal.ControlTaskQueue,
		WorkflowExecutionTimeout: 20 * time.Second,
	}, workflows.ListAppInstances, workflows.ListAppInstancesInput{AppID: appID})
	var list contract.ListInstancesResult
	if err == nil {
		err = run.Get(ctx, &list)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return list, huma.Error503ServiceUnavailable("the application's node did not answer in time")
		}
		s.log.Error("list instances", "app_id", appID, "error", err)
		return list, huma.Error503ServiceUnavailable("could not reach the application's node")
	}
	return list, nil
}
