package workflows

import (
	"io"
	"log/slog"

	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/certs"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/activities/node/acme"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
)

// quietLogger keeps the SDK's per-activity log lines out of test output.
var quietLogger = sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))

// newTestEnv is a workflow test environment with every activity struct registered, ready for
// OnActivity mocks.
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quietLogger)
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(&store.Activities{})
	env.RegisterActivity(&gitclone.Activities{})
	env.RegisterActivity(&docker.Activities{})
	env.RegisterActivity(&nginx.Activities{})
	env.RegisterActivity(&billing.Activities{})
	env.RegisterActivity(&certs.Activities{})
	env.RegisterActivity(&acme.Activities{})
	return env
}
