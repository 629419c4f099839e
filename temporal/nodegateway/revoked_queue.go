package nodegateway

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/temporal"

	sptemporal "github.com/skypanel/skypanel/temporal"
)

// ErrTypeNodeRevoked is the type of the failure a revoked node's tasks end with.
const ErrTypeNodeRevoked = "NodeRevoked"

// gatewayIdentity names the gateway where it answers tasks itself, in histories.
const gatewayIdentity = "skypanel-node-gateway"

// RevokedReason is why a revoked node's work failed: the workflows show it as the operation's
// reason ("node revoked: …").
func RevokedReason(nodeName string) string {
	return fmt.Sprintf("node revoked: an administrator revoked node %s, so nothing runs there any more (evacuate it to move its apps)", nodeName)
}

// A revoked node's work must not wait out its timeouts: the step under way on the node would
// end at its heartbeat or StartToClose timeout, and the steps queued for it at their 2-minute
// pickup timeout, each saying the node "looks offline". So the gateway answers them itself,
// with a non-retryable failure that says the node was revoked: at once for the tasks the node
// held here, and for the tasks that reach the node's queue in the window after the revocation
// (retries, the next steps of operations under way, their clean-up). After the window the
// node is offline to everyone and deploys to it fail at once on that ground.
func (g *Gateway) startRevokedQueueDrain(nodeID, name string, held [][]byte, until time.Time) {
	if name == "" {
		name = nodeID
	}
	g.drainsMu.Lock()
	if g.bg.Err() != nil { // closed: nothing may start any more
		g.drainsMu.Unlock()
		return
	}
	running := g.drains[nodeID]
	g.drains[nodeID] = true
	g.wg.Add(1)
	g.drainsMu.Unlock()
	failure := g.opts.FailureConverter.ErrorToFailure(temporal.NewNonRetryableApplicationError(RevokedReason(name), ErrTypeNodeRevoked, nil))
	go func() {
		defer g.wg.Done()
		for _, token := range held {
			g.failTask(token, failure, nodeID)
		}
		if !running {
			g.drainRevokedQueue(nodeID, failure, until)
		}
	}()
}

func (g *Gateway) failTask(token []byte, failure *failurepb.Failure, nodeID string) {
	ctx, cancel := context.WithTimeout(g.bg, 10*time.Second)
	defer cancel()
	_, err := g.upstream.RespondActivityTaskFailed(ctx, &workflowservice.RespondActivityTaskFailedRequest{
		Namespace: g.opts.Namespace, TaskToken: token, Failure: failure, Identity: gatewayIdentity,
	})
	if err != nil {
		// Most often the task ended meanwhile (NotFound): nothing to fail.
		g.log.Info("fail a task of a revoked node", "node_id", nodeID, "err", err)
	}
}

// drainRevokedQueue polls the node's queue until the window ends, failing every task.
func (g *Gateway) drainRevokedQueue(nodeID string, failure *failurepb.Failure, until time.Time) {
	queue := sptemporal.NodeTaskQueue(nodeID)
	log := g.log.With("node_id", nodeID, "task_queue", queue)
	log.Info("failing the revoked node's queued tasks", "until", until.UTC().Format(time.RFC3339))
	for g.opts.now().Before(until) && g.bg.Err() == nil {
		ctx, cancel := context.WithDeadline(g.bg, until)
		task, err := g.upstream.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{
			Namespace: g.opts.Namespace,
			TaskQueue: &taskqueuepb.TaskQueue{Name: queue, Kind: enumspb.TASK_QUEUE_KIND_NORMAL},
			Identity:  gatewayIdentity,
		})
		cancel()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("poll the revoked node's queue", "err", err)
				sleep(g.bg, time.Second)
			}
		case len(task.GetTaskToken()) > 0:
			log.Info("failed a task of the revoked node", "activity_type", task.GetActivityType().GetName(),
				"workflow_id", task.GetWorkflowExecution().GetWorkflowId())
			g.failTask(task.GetTaskToken(), failure, nodeID)
		}
	}
	g.drainsMu.Lock()
	delete(g.drains, nodeID)
	g.drainsMu.Unlock()
}

// resumeRevokedQueues takes up, at start, the queues of nodes revoked within the window: the
// API that revoked them may have restarted since.
func (g *Gateway) resumeRevokedQueues(ctx context.Context) {
	now := g.opts.now()
	nodes, err := g.opts.Standings.NodesRevokedSince(ctx, now.Add(-g.opts.RevokedQueueWindow))
	if err != nil {
		g.log.Error("list the nodes revoked lately", "err", err)
		return
	}
	for _, n := range nodes {
		g.cut(n.ID, n.Name, n.RevokedAt)
	}
}

// watchRevocations looks, every CheckInterval, whether a node the gateway serves was revoked
// elsewhere (another API replica) or deleted, and cuts it off; it also forgets tasks handed out
// so long ago that they ended on Temporal's side.
func (g *Gateway) watchRevocations(ctx context.Context) {
	tick := time.NewTicker(g.opts.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.bg.Done():
			return
		case <-tick.C:
		}
		g.calls.forgetTasksBefore(g.opts.now().Add(-forgetTasksAfter))
		ids := g.calls.nodes()
		if len(ids) == 0 {
			continue
		}
		revoked, err := g.opts.Standings.RevokedNodesAmong(ctx, ids)
		if err != nil {
			g.log.Error("look for revoked nodes", "err", err)
			continue
		}
		for _, n := range revoked {
			g.cut(n.ID, n.Name, n.RevokedAt)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
