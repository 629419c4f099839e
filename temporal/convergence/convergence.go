// Package convergence keeps every running app at its instance count with no API call. The
// control plane owns each app's desired state (status, current release, instance count); each
// node's agent reports what runs on it every few seconds (POST /api/paas/agent/instances, kept
// in node_reports). The checker compares the two and queues a heal operation for an app that
// is short: through the app's operation queue, so a heal never runs beside a deploy, and it is
// listed with its reason like any other operation.
//
// Why reports and a loop in the control worker rather than a Temporal Schedule: a schedule
// would add a workflow run to the history every few seconds per node for a check that almost
// always finds nothing; the reports are data the check reads in one query, and the only thing
// it starts, the heal, is a workflow with its whole history in the Temporal UI.
package convergence

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/skypanel/skypanel/db"
	"github.com/skypanel/skypanel/temporal/operations"
)

// Defaults of the checker: a node report older than DefaultFresh is not acted on (the node
// may be down: moving its apps is another matter); DefaultMaxHeals heals within DefaultWindow
// that did not keep the app whole make it degraded instead of healed again.
const (
	DefaultFresh    = 30 * time.Second
	DefaultWindow   = 10 * time.Minute
	DefaultMaxHeals = 3
)

// Enqueuer queues an operation (operations.Owner).
type Enqueuer interface {
	Enqueue(ctx context.Context, r operations.Request) (db.Operation, error)
}

// Checker compares desired with reported state and queues heals. One Checker per control
// worker; several workers checking at once queue one heal (at most one waits per app).
type Checker struct {
	Store *db.Store
	Ops   Enqueuer
	Log   *slog.Logger
	// Fresh, Window and MaxHeals override the defaults (tests).
	Fresh    time.Duration
	Window   time.Duration
	MaxHeals int

	// shortSince is, per app, when the first report that showed it short arrived. A heal is
	// queued only once a later report shows it short too: an instance Docker restarts after a
	// crash, or one a running operation replaces, is back by the next report.
	shortSince map[string]time.Time
}

// Watch checks every interval until ctx ends.
func (c *Checker) Watch(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		if err := c.Check(ctx); err != nil && ctx.Err() == nil {
			c.Log.WarnContext(ctx, "convergence check", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Check looks at every running app once.
func (c *Checker) Check(ctx context.Context) error {
	if c.shortSince == nil {
		c.shortSince = make(map[string]time.Time)
	}
	apps, err := c.Store.AppsToConverge(ctx, orDefault(c.Fresh, DefaultFresh))
	if err != nil {
		return err
	}
	looked := make(map[string]bool, len(apps))
	var errs []error
	for _, app := range apps {
		looked[app.AppID] = true
		if err := c.checkApp(ctx, app); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", app.AppID, err))
		}
	}
	// Apps no longer listed (stopped, deleted, healing) start afresh when they are again.
	for appID := range c.shortSince {
		if !looked[appID] {
			delete(c.shortSince, appID)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d apps: %w", len(errs), len(apps), errs[0])
	}
	return nil
}

func (c *Checker) checkApp(ctx context.Context, app db.DesiredApp) error {
	s := Compare(app)
	// A report that arrived before the app's last change may show it as it was.
	if !s.Short() || !app.ReportedAt.After(app.ChangedAt) {
		delete(c.shortSince, app.AppID)
		return nil
	}
	first, seen := c.shortSince[app.AppID]
	if !seen || !first.After(app.ChangedAt) {
		c.shortSince[app.AppID] = app.ReportedAt
		return nil
	}
	if !app.ReportedAt.After(first) {
		return nil // the same report again
	}
	log := c.Log.With("app_id", app.AppID, "node_id", app.NodeID)
	heals, last, err := c.Store.HealAttempts(ctx, app.AppID, orDefault(c.Window, DefaultWindow))
	if err != nil {
		return err
	}
	if max := c.maxHeals(); heals >= max {
		reason := fmt.Sprintf("not healed again: %d heals within %s did not keep it at %d instance(s) (%s). "+
			"It is healed again after its next deploy, restart or start. The last heal: %s",
			heals, orDefault(c.Window, DefaultWindow), app.Instances, s.Describe(), last)
		changed, err := c.Store.MarkAppDegraded(ctx, app.AppID, reason)
		if err == nil && changed {
			log.WarnContext(ctx, "app degraded: heals keep failing", "heals", heals, "state", s.Describe())
		}
		delete(c.shortSince, app.AppID)
		return err
	}
	op, err := c.Ops.Enqueue(ctx, operations.Request{
		OrgID: app.OrgID, AppID: app.AppID, Kind: db.OpHeal, Via: "convergence",
		Reason: "the node reported " + s.Describe(),
	})
	if err != nil {
		return fmt.Errorf("queue heal: %w", err)
	}
	delete(c.shortSince, app.AppID)
	log.InfoContext(ctx, "heal queued", "operation_id", op.ID, "state", s.Describe(), "heals_before", heals)
	return nil
}

func (c *Checker) maxHeals() int {
	if c.MaxHeals > 0 {
		return c.MaxHeals
	}
	return DefaultMaxHeals
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Shortfall is an app's reported state against its instance count.
type Shortfall struct {
	Want    int
	Running int
	// Others counts the release's instances that exist but do not run, by Docker state
	// (restarting, exited, …).
	Others map[string]int
}

// Compare counts the instances of the app's current release its node reported running.
// Instances of other releases (a rollout's leftovers) do not count.
func Compare(app db.DesiredApp) Shortfall {
	s := Shortfall{Want: max(app.Instances, 1), Others: map[string]int{}}
	for _, inst := range app.Reported {
		if inst.ReleaseID != app.ReleaseID {
			continue
		}
		if inst.State == "running" {
			s.Running++
		} else {
			s.Others[inst.State]++
		}
	}
	return s
}

// Short says whether fewer instances run than the app should have.
func (s Shortfall) Short() bool { return s.Running < s.Want }

// Describe says it for people: "1 of 3 instances running, 1 restarting, 1 missing".
func (s Shortfall) Describe() string {
	parts := []string{fmt.Sprintf("%d of %d instances running", s.Running, s.Want)}
	states := make([]string, 0, len(s.Others))
	present := s.Running
	for state, n := range s.Others {
		states = append(states, fmt.Sprintf("%d %s", n, state))
		present += n
	}
	sort.Strings(states)
	parts = append(parts, states...)
	if missing := s.Want - present; missing > 0 {
		parts = append(parts, fmt.Sprintf("%d missing", missing))
	}
	return strings.Join(parts, ", ")
}
