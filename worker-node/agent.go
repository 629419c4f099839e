package workernode

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/skypanel/skypanel/temporal/codec"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	dockerclient "github.com/docker/docker/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/grpc"

	"github.com/skypanel/skypanel/activities/node/acme"
	"github.com/skypanel/skypanel/activities/node/docker"
	"github.com/skypanel/skypanel/activities/node/gitclone"
	"github.com/skypanel/skypanel/activities/node/nginx"
	"github.com/skypanel/skypanel/temporal"
)

// Run is the agent: register (once), start the node's nginx, run the Temporal worker on the
// node's task queue and report heartbeats, until ctx ends; then stop the worker (running
// activities get its grace period), the heartbeats and, with --stop-nginx-on-exit, nginx.
// It sets slog's default logger to carry node_id.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	pool, err := checkedSubnetPool(cfg)
	if err != nil {
		return err
	}
	// Before any work: a tenant's build or app must never run without the rules.
	stopEgress, err := startEgressRules(ctx, cfg, pool)
	if err != nil {
		return err
	}
	defer stopEgress()
	// 0711: nginx workers (an unprivileged user) may traverse to the nginx prefix; nobody else
	// can list the directory, and agent.json and builds/ are root's alone.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(cfg.buildsDir(), 0o700); err != nil {
		return fmt.Errorf("builds dir: %w", err)
	}
	if err := prepareBackupsDir(cfg); err != nil {
		return err
	}

	info := readSystemInfo()
	api := NewAPIClient(cfg.APIURL, "")
	gateway, err := loadGatewayIdentity(cfg)
	if err != nil {
		return err
	}
	creds, err := ensureRegistered(ctx, cfg, api, info, gateway)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.Default().With("node_id", creds.NodeID))
	removeLeftoverKeyring(ctx, cfg)
	nodeAPI := api.withToken(creds.NodeToken)
	// The node's own keys: the gateway re-seals its tasks under them, and the API its apps'
	// values. It never holds the platform's keyring.
	nodeKeys := &nodeSecrets{api: nodeAPI}
	if err := nodeKeys.fetch(ctx); err != nil {
		return err
	}
	// An agent registered before the gateway existed, or whose certificate is due, gets one
	// with its node token before it dials.
	if err := ensureGatewayCertificate(ctx, gateway, nodeAPI, creds.NodeID); err != nil {
		return err
	}
	gatewayTLS, err := gateway.tlsConfig()
	if err != nil {
		return err
	}
	logs := NewHTTPLogSink(nodeAPI)

	dockerClient, err := docker.NewClient()
	if err != nil {
		return err
	}
	defer dockerClient.Close()
	if _, err := dockerClient.Ping(ctx); err != nil {
		slog.WarnContext(ctx, "docker engine not reachable yet; docker activities will fail until it is", "err", err)
	}

	router, err := nginx.NewRouter(nginx.RouterOptions{Prefix: cfg.nginxPrefix(), Binary: cfg.NginxBinary, Listen: cfg.NginxListen, HTTPSListen: cfg.NginxHTTPSListen})
	if err != nil {
		return err
	}
	if err := router.Start(ctx); err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	if cfg.StopNginxOnExit {
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			if err := router.Stop(stopCtx); err != nil {
				slog.Error("stop nginx", "err", err)
			}
		}()
	}

	// A node may boot before the control plane: Dial retries until the gateway answers. The
	// agent reaches Temporal only through it, and asks only what the gateway forwards: no
	// worker heartbeats (nor, below, a workflow worker).
	host, _ := os.Hostname()
	dataConverter, failureConverter := codec.EncryptionConvertersFrom(nodeKeys.current, codec.Options{AllowPlaintext: cfg.AllowPlaintextPayloads})
	conns := newGatewayConns()
	tc, err := temporal.Dial(ctx, temporal.ClientConfig{
		Address:                 cfg.GatewayAddress,
		Namespace:               cfg.TemporalNamespace,
		Identity:                fmt.Sprintf("skypanel-agent/%s@%s", creds.NodeID, host),
		DataConverter:           dataConverter,
		FailureConverter:        failureConverter,
		TLS:                     gatewayTLS,
		DialOptions:             []grpc.DialOption{grpc.WithContextDialer(conns.dial)},
		WorkerHeartbeatInterval: -1,
	}, slog.Default())
	if err != nil {
		return err
	}
	defer tc.Close()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := temporal.NodeTaskQueue(creds.NodeID)
	w := worker.New(tc, queue, worker.Options{
		// Workflows run on the control plane only; the gateway refuses a node's workflow polls.
		DisableWorkflowWorker: true,
		// Activities still running at shutdown get this long to finish before they are
		// cancelled (and retried by Temporal, on this node once it is back).
		WorkerStopTimeout: 10 * time.Second,
		// A heartbeat reaches Temporal at most this long after the activity records it, and
		// its answer is how a running activity learns it is cancelled: a cancelled build stops
		// within seconds, not 0.8 × its heartbeat timeout.
		MaxHeartbeatThrottleInterval: 2 * time.Second,
		// Not the SDK's 1000. Builds, the work that needs cores and memory, are admitted by
		// the build slots (docker.OrgBuildSlots, one per core node-wide) and wait for them
		// inside their activity; the rest mostly wait on dockerd, so the cap leaves room for
		// them beside queued builds (a start held behind builds would look like an offline
		// node after NodePickupTimeout) while bounding dockerd connections and descriptors.
		MaxConcurrentActivityExecutionSize: NodeActivitySlots(),
		OnFatalError:                       func(err error) { cancel(fmt.Errorf("temporal worker: %w", err)) },
	})
	acmeRoots, err := cfg.ACMERootPool()
	if err != nil {
		return fmt.Errorf("--acme-ca-roots: %w", err)
	}
	registerActivities(w, cfg, creds.NodeID, docker.RegistryCredential(creds.NodeID, creds.NodeToken), logs, dockerClient, router, nodeKeys, backupTransfer{api: nodeAPI, secrets: nodeKeys}, pool, acmeRoots)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start temporal worker on %s: %w", queue, err)
	}
	slog.InfoContext(ctx, "agent running", "task_queue", queue, "gateway", cfg.GatewayAddress, "namespace", cfg.TemporalNamespace, "nginx_listen", cfg.NginxListen, "version", Version)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		renewalLoop(ctx, gateway, nodeAPI, creds.NodeID, conns, cancel, nodeKeys.rotate)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		reconcileLoop(ctx, router, docker.NewHousekeeping(&docker.Activities{Client: dockerClient, NodeID: creds.NodeID, Pool: pool}), reportTo(nodeAPI))
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		heartbeatLoop(ctx, nodeAPI, cfg.HeartbeatInterval, &machineProbe{
			info:       info,
			procDir:    "/proc",
			containers: func(ctx context.Context) (int, error) { return countContainers(ctx, dockerClient, creds.NodeID) },
			dockerRoot: func(ctx context.Context) (string, error) { return dockerRootDir(ctx, dockerClient) },
		})
	}()

	<-ctx.Done()
	slog.Info("agent stopping")
	w.Stop()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return nil
}

// registerActivities puts every node activity on the worker: git clone, Docker, nginx and ACME.
func registerActivities(r worker.ActivityRegistry, cfg Config, nodeID, registryAuth string, logs *HTTPLogSink, dc *dockerclient.Client, router *nginx.Router, nodeKeys *nodeSecrets, backups docker.BackupTransfer, pool docker.SubnetPool, acmeRoots *x509.CertPool) {
	r.RegisterActivity(&gitclone.Activities{WorkRoot: cfg.buildsDir(), Logs: logs, DenyLoopbackHTTP: !cfg.AllowLoopbackGit, MaxCloneBytes: int64(cfg.MaxCloneMB) << 20,
		Tokens: nodeKeys})
	r.RegisterActivity(&docker.Activities{Client: dc, Logs: logs, NodeID: nodeID, Secrets: nodeKeys, Pool: pool, RegistryAuth: registryAuth,
		BuildTimeout: cfg.BuildTimeout, BuildDiskMB: cfg.BuildDiskMB, Backups: backups, BackupDir: backupsDir(cfg)})
	r.RegisterActivity(&nginx.Activities{Router: router, Secrets: nodeKeys})
	r.RegisterActivity(&acme.Activities{Keys: nodeKeys, Webroot: router.ACMEWebroot(), RootCAs: acmeRoots})
}

// checkedSubnetPool is the node's tenant network pool, refused when it overlaps one of the
// host's own routes (Docker's bridges aside).
func checkedSubnetPool(cfg Config) (docker.SubnetPool, error) {
	pool, err := cfg.SubnetPool()
	if err != nil {
		return pool, err
	}
	routes, err := docker.HostRoutes()
	if err != nil {
		return pool, err
	}
	if err := pool.CheckHostRoutes(routes); err != nil {
		return pool, err
	}
	slog.Info("tenant network pool", "pool", pool.Range.String(), "subnet_size", pool.Size, "subnets", pool.Count())
	return pool, nil
}

// countContainers is the number of this node's running SkyPanel containers. An engine may be
// shared by several agents (tests, a dev machine), so it counts the node's label, not every
// managed container.
func countContainers(ctx context.Context, dc *dockerclient.Client, nodeID string) (int, error) {
	list, err := dc.ContainerList(ctx, container.ListOptions{Filters: nodeContainersFilter(nodeID)})
	if err != nil {
		return 0, fmt.Errorf("count containers: %w", err)
	}
	return len(list), nil
}

// nodeContainersFilter matches the platform's containers of this node (label filters are ANDed).
func nodeContainersFilter(nodeID string) filters.Args {
	return filters.NewArgs(
		filters.Arg("label", docker.LabelManaged+"=true"),
		filters.Arg("label", docker.LabelNode+"="+nodeID),
	)
}

// dockerRootDir is where the engine keeps its data (DockerRootDir of `docker info`).
func dockerRootDir(ctx context.Context, dc *dockerclient.Client) (string, error) {
	info, err := dc.Info(ctx)
	if err != nil {
		return "", fmt.Errorf("docker info: %w", err)
	}
	return info.DockerRootDir, nil
}

// NodeActivitySlots is how many activities the node runs at once: 32 per core, at least 64.
func NodeActivitySlots() int { return max(64, 32*runtime.NumCPU()) }
