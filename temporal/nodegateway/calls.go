package nodegateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errNodeCut is the cause of a call cancelled because its node was revoked.
var errNodeCut = errors.New("the node was revoked")

// liveCalls holds every call the gateway is forwarding, by node, so that revoking a node ends
// them at once (a long poll held open included), and the tasks it handed each node and not yet
// saw answered, so that revoking a node fails them at once instead of at their timeouts.
type liveCalls struct {
	mu     sync.Mutex
	calls  map[string]map[*liveCall]struct{}
	tasks  map[string]map[string]time.Time // node id → Temporal's token → when handed out
	cutOff map[string]bool                 // nodes revoked: every call refused from now on
}

type liveCall struct{ cancel context.CancelCauseFunc }

func newLiveCalls() *liveCalls {
	return &liveCalls{calls: map[string]map[*liveCall]struct{}{}, tasks: map[string]map[string]time.Time{}, cutOff: map[string]bool{}}
}

// begin registers a call of the node; done must be called when it ends. It refuses (errNodeCut)
// a node cut off already.
func (l *liveCalls) begin(ctx context.Context, nodeID string) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cutOff[nodeID] {
		return nil, nil, errNodeCut
	}
	ctx, cancel := context.WithCancelCause(ctx)
	call := &liveCall{cancel: cancel}
	if l.calls[nodeID] == nil {
		l.calls[nodeID] = map[*liveCall]struct{}{}
	}
	l.calls[nodeID][call] = struct{}{}
	return ctx, func() {
		l.mu.Lock()
		delete(l.calls[nodeID], call)
		if len(l.calls[nodeID]) == 0 {
			delete(l.calls, nodeID)
		}
		l.mu.Unlock()
		cancel(nil)
	}, nil
}

// isCut says whether the node was cut off here.
func (l *liveCalls) isCut(nodeID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cutOff[nodeID]
}

// cut refuses the node from now on, cancels its calls and returns the tasks it held; first is
// false when it was cut off already (and nothing was left to return).
func (l *liveCalls) cut(nodeID string) (tasks [][]byte, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first = !l.cutOff[nodeID]
	l.cutOff[nodeID] = true
	for call := range l.calls[nodeID] {
		call.cancel(errNodeCut)
	}
	for token := range l.tasks[nodeID] {
		tasks = append(tasks, []byte(token))
	}
	delete(l.tasks, nodeID)
	return tasks, first
}

// handedOut records a task the node took; answered forgets it.
func (l *liveCalls) handedOut(nodeID string, token []byte, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cutOff[nodeID] {
		return
	}
	if l.tasks[nodeID] == nil {
		l.tasks[nodeID] = map[string]time.Time{}
	}
	l.tasks[nodeID][string(token)] = at
}

func (l *liveCalls) answered(nodeID string, token []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.tasks[nodeID], string(token))
	if len(l.tasks[nodeID]) == 0 {
		delete(l.tasks, nodeID)
	}
}

// forgetTasksBefore drops the tasks handed out before t: their attempts timed out on
// Temporal's side long ago (no node activity runs for hours).
func (l *liveCalls) forgetTasksBefore(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for nodeID, tasks := range l.tasks {
		for token, at := range tasks {
			if at.Before(t) {
				delete(tasks, token)
			}
		}
		if len(tasks) == 0 {
			delete(l.tasks, nodeID)
		}
	}
}

// nodes lists the nodes with calls or tasks here that are not cut off yet: those whose
// revocation elsewhere the gateway must notice.
func (l *liveCalls) nodes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	for id := range l.calls {
		seen[id] = true
	}
	for id := range l.tasks {
		seen[id] = true
	}
	var out []string
	for id := range seen {
		if !l.cutOff[id] {
			out = append(out, id)
		}
	}
	return out
}
