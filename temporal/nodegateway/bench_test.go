package nodegateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/skypanel/skypanel/cmd/skypanel/devharness/devserver"
	"github.com/skypanel/skypanel/secrets"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/codec"
)

// pickups is how many steps each path runs: enough for a p99.
const pickups = 200

// pickupStep answers at once with how long its task waited between its scheduling and its
// start on the node: the pickup, as the server and the node see it (one machine, one clock).
func pickupStep(ctx context.Context) (time.Duration, error) {
	return time.Since(activity.GetInfo(ctx).ScheduledTime), nil
}

func pickupWorkflow(ctx workflow.Context, queue string) (time.Duration, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{TaskQueue: queue, ScheduleToStartTimeout: time.Minute, StartToCloseTimeout: time.Minute})
	var waited time.Duration
	err := workflow.ExecuteActivity(ctx, "PickupStep").Get(ctx, &waited)
	return waited, err
}

// BenchmarkGatewayPickup measures task pickup (an activity's scheduling to its start on the
// node) for a node polling the frontend directly and for one polling through the node gateway,
// with everything the gateway does on the way: mutual TLS, the policy and standing checks, task
// token wrapping, and payloads re-sealed between the platform key and the node's own. The two
// paths run one after the other against one Temporal dev server. Figures: p50 and p99 of each,
// and what the gateway adds at p50 (target: at most 5 ms).
func BenchmarkGatewayPickup(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ts, err := devserver.Start(ctx, devserver.Options{UIPort: -1, SearchAttributes: []string{}})
	if err != nil {
		b.Fatalf("start the Temporal dev server (make deps installs it): %v", err)
	}
	defer ts.Stop(context.Background()) //nolint:errcheck
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	platform, err := secrets.NewKeyring("k1")
	if err != nil {
		b.Fatal(err)
	}
	nodeRing, err := secrets.NewKeyring("n1")
	if err != nil {
		b.Fatal(err)
	}
	platformDC, platformFC := codec.EncryptionConverters(platform)
	control, err := client.Dial(client.Options{HostPort: ts.Address(), Namespace: ts.Namespace(), Logger: quiet, DataConverter: platformDC, FailureConverter: platformFC})
	if err != nil {
		b.Fatal(err)
	}
	defer control.Close()
	cw := worker.New(control, sptemporal.ControlTaskQueue, worker.Options{})
	cw.RegisterWorkflowWithOptions(pickupWorkflow, workflow.RegisterOptions{Name: "PickupWorkflow"})
	if err := cw.Start(); err != nil {
		b.Fatal(err)
	}
	defer cw.Stop()

	ca, err := GenerateAuthority(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	standings := &fakeStandings{nodes: map[string]*fakeNode{}}
	gw, err := New(Options{Frontend: ts.Address(), Namespace: ts.Namespace(), Authority: ca, Standings: standings,
		PlatformKeyring: platform, NodeKeyring: func(context.Context, string) (*secrets.Keyring, error) { return nodeRing, nil }})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	serveCtx, stopServing := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(serveCtx, l) }()
	defer func() {
		stopServing()
		<-served
		gw.Close() //nolint:errcheck
	}()

	// nodeClient is a node's client: directly to the frontend with the platform key, or
	// through the gateway with its certificate and its own key.
	nodeClient := func(nodeID string, viaGateway bool) client.Client {
		opts := client.Options{HostPort: ts.Address(), Namespace: ts.Namespace(), Logger: quiet, WorkerHeartbeatInterval: -1,
			DataConverter: platformDC, FailureConverter: platformFC}
		if viaGateway {
			key := newKey(b)
			issued, err := ca.IssueNode(nodeID, csrFor(b, key, nodeID), time.Now(), time.Hour)
			if err != nil {
				b.Fatal(err)
			}
			standings.add(nodeID, "bench")
			standings.issue(nodeID, issued.Serial, time.Time{})
			keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
			cert, err := tls.X509KeyPair(issued.PEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
			if err != nil {
				b.Fatal(err)
			}
			nodeDC, nodeFC := codec.EncryptionConverters(nodeRing)
			opts.HostPort, opts.DataConverter, opts.FailureConverter = l.Addr().String(), nodeDC, nodeFC
			opts.ConnectionOptions.TLS = &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
		}
		c, err := client.Dial(opts)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}

	measure := func(viaGateway bool) []time.Duration {
		nodeID := uuid.NewString()
		c := nodeClient(nodeID, viaGateway)
		defer c.Close()
		w := worker.New(c, sptemporal.NodeTaskQueue(nodeID), worker.Options{DisableWorkflowWorker: true})
		w.RegisterActivityWithOptions(pickupStep, activity.RegisterOptions{Name: "PickupStep"})
		if err := w.Start(); err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		var waits []time.Duration
		for i := range pickups + 10 {
			run, err := control.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: sptemporal.ControlTaskQueue}, "PickupWorkflow", sptemporal.NodeTaskQueue(nodeID))
			if err != nil {
				b.Fatal(err)
			}
			var waited time.Duration
			if err := run.Get(ctx, &waited); err != nil {
				b.Fatalf("step %d (gateway %v): %v", i, viaGateway, err)
			}
			if i >= 10 { // the first steps warm connections up
				waits = append(waits, waited)
			}
		}
		slices.Sort(waits)
		return waits
	}
	quantile := func(sorted []time.Duration, q float64) float64 {
		return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
	}

	b.ResetTimer()
	for range b.N {
		direct := measure(false)
		gateway := measure(true)
		b.ReportMetric(quantile(direct, 0.5), "direct-p50-ms")
		b.ReportMetric(quantile(direct, 0.99), "direct-p99-ms")
		b.ReportMetric(quantile(gateway, 0.5), "gateway-p50-ms")
		b.ReportMetric(quantile(gateway, 0.99), "gateway-p99-ms")
		b.ReportMetric(quantile(gateway, 0.5)-quantile(direct, 0.5), "added-p50-ms")
	}
}
