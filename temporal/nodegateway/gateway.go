// Package nodegateway is the node gateway: the only way worker nodes reach Temporal. Each node
// connects with a client certificate the control plane's CA issued it (authority.go), and the
// gateway forwards only what an activity worker on the node's own task queue needs (policy.go),
// with task tokens it wrapped for that node (tasktoken.go). Everything else is refused with
// PermissionDenied and logged with the node's id. Revoking a node cuts it off at once: new
// calls are refused, its open calls cancelled (calls.go), the tasks it held and the ones still
// queued for it fail with a "node revoked" reason (revoked_queue.go). A revoke made by another
// API replica is honoured within the standing check's few seconds (standing.go).
//
// It runs in the `skypanel api` process, built on go.temporal.io/api/proxy: the proxy forwards
// to the real frontend, and the gateway's interceptor decides what reaches it.
package nodegateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"sync"
	"time"

	"github.com/skypanel/skypanel/secrets"
	"github.com/skypanel/skypanel/temporal/codec"
	"go.temporal.io/api/proxy"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Defaults of Options.
const (
	DefaultCheckInterval      = 2 * time.Second
	DefaultSupersededGrace    = 10 * time.Minute
	DefaultRevokedQueueWindow = 15 * time.Minute
	// forgetTasksAfter: a task handed out this long ago has ended one way or another (the
	// longest node step, a build, may take 30 minutes).
	forgetTasksAfter = 2 * time.Hour
)

// Options configure a Gateway.
type Options struct {
	// Frontend is the Temporal frontend's host:port: the gateway reaches it, nodes never do.
	Frontend string
	// FrontendTLS, when set, secures the gateway's own connection to the frontend.
	FrontendTLS *tls.Config
	// Namespace is the one namespace nodes work in.
	Namespace string
	// Authority verifies the nodes' certificates and issues the gateway's own.
	Authority *Authority
	// Standings answers whether a node may call (revoked, certificate known and current).
	Standings Standings
	// Hosts are the names and IP addresses nodes dial the gateway by: its certificate's.
	// Default: localhost, 127.0.0.1 and ::1.
	Hosts []string
	// FailureConverter encodes the failure a revoked node's tasks end with: the platform's, so
	// the reason is sealed in histories like every other failure. Default: the SDK's.
	FailureConverter converter.FailureConverter
	// CheckInterval is how long a node's standing is trusted before it is read again, and how
	// often the gateway looks for revocations of the nodes it serves. Default 2 s.
	CheckInterval time.Duration
	// SupersededGrace is how long a renewed certificate's predecessor is still accepted.
	// Default 10 min.
	SupersededGrace time.Duration
	// RevokedQueueWindow is how long after a revocation the gateway keeps failing the tasks
	// that reach the node's queue (retries, steps of operations under way). Default 15 min.
	RevokedQueueWindow time.Duration
	// Log receives every refusal, with node_id and method.
	Log *slog.Logger
	// PlatformKeyring and NodeKeyring, when both set, re-seal the payloads a node exchanges:
	// what Temporal hands a node (its tasks) from the platform key to the node's own, what a
	// node answers from its key to the platform's. A node then never holds the platform key.
	PlatformKeyring *secrets.Keyring
	NodeKeyring     func(ctx context.Context, nodeID string) (*secrets.Keyring, error)

	now func() time.Time // tests move the clock
}

// Gateway forwards nodes' calls to the Temporal frontend, each checked against the policy.
type Gateway struct {
	opts      Options
	upstream  workflowservice.WorkflowServiceClient
	conn      *grpc.ClientConn
	server    *grpc.Server
	policy    policy
	standings *standingCache
	calls     *liveCalls
	log       *slog.Logger

	// bg lives as long as the gateway: the revoked queues' drains run under it.
	bg     context.Context
	stopBG context.CancelFunc
	wg     sync.WaitGroup

	certMu sync.Mutex
	cert   *tls.Certificate

	drainsMu sync.Mutex
	drains   map[string]bool // nodes whose revoked queue is being drained here
}

// New builds the gateway; Serve runs it. The frontend is dialled lazily: the gateway starts
// while Temporal does.
func New(opts Options) (*Gateway, error) {
	if opts.Frontend == "" || opts.Namespace == "" || opts.Authority == nil || opts.Standings == nil {
		return nil, errors.New("node gateway: Frontend, Namespace, Authority and Standings are required")
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.SupersededGrace <= 0 {
		opts.SupersededGrace = DefaultSupersededGrace
	}
	if opts.RevokedQueueWindow <= 0 {
		opts.RevokedQueueWindow = DefaultRevokedQueueWindow
	}
	if len(opts.Hosts) == 0 {
		opts.Hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	if opts.FailureConverter == nil {
		opts.FailureConverter = temporal.GetDefaultFailureConverter()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	creds := insecure.NewCredentials()
	if opts.FrontendTLS != nil {
		creds = credentials.NewTLS(opts.FrontendTLS)
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if opts.PlatformKeyring != nil && opts.NodeKeyring != nil {
		reseal, err := codec.ResealInterceptor(opts.PlatformKeyring, func(ctx context.Context) (*secrets.Keyring, error) {
			nodeID, ok := ctx.Value(upstreamNodeKey{}).(string)
			if !ok {
				return nil, nil // the gateway's own call (a revoked node's tasks failed): platform payloads
			}
			ring, err := opts.NodeKeyring(ctx, nodeID)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "the node gateway cannot read node %s's keys now; try again", nodeID)
			}
			return ring, nil
		})
		if err != nil {
			return nil, fmt.Errorf("node gateway: %w", err)
		}
		dialOpts = append(dialOpts, grpc.WithChainUnaryInterceptor(reseal))
	}
	conn, err := grpc.NewClient(opts.Frontend, append(dialOpts,
		// As the SDK's own client: large results, and keepalive that outlives idle long polls.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128<<20)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 15 * time.Second, PermitWithoutStream: true}))...)
	if err != nil {
		return nil, fmt.Errorf("node gateway: the frontend %s: %w", opts.Frontend, err)
	}
	g := &Gateway{
		opts:     opts,
		upstream: workflowservice.NewWorkflowServiceClient(conn),
		conn:     conn,
		policy:   policy{namespace: opts.Namespace, tokens: taskTokens{key: opts.Authority.tokenKey}},
		standings: &standingCache{store: opts.Standings, ttl: opts.CheckInterval, grace: opts.SupersededGrace, now: opts.now,
			entries: map[standingKey]cachedVerdict{}},
		calls:  newLiveCalls(),
		log:    opts.Log.With("component", "node-gateway"),
		drains: map[string]bool{},
	}
	g.bg, g.stopBG = context.WithCancel(context.Background())
	// The proxy forwards no header of the node's own: the interceptor sets the few the
	// frontend reads (upstreamContext).
	forward, err := proxy.NewWorkflowServiceProxyServer(proxy.WorkflowServiceProxyOptions{Client: g.upstream, DisableHeaderForwarding: true})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("node gateway: %w", err)
	}
	tlsConfig := &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      opts.Authority.Pool(),
		GetCertificate: g.serverCertificate,
	}
	g.server = grpc.NewServer(
		grpc.Creds(loggedCredentials{TransportCredentials: credentials.NewTLS(tlsConfig), log: g.log}),
		grpc.ChainUnaryInterceptor(g.intercept),
		grpc.StreamInterceptor(g.refuseStream),
		grpc.UnknownServiceHandler(g.refuseUnknownService),
		grpc.MaxRecvMsgSize(16<<20),
		// The SDK pings every 30 s even between calls; the default policy would answer that
		// with GOAWAY. The gateway's own pings find nodes gone without a word.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute, Timeout: 20 * time.Second}),
	)
	workflowservice.RegisterWorkflowServiceServer(g.server, forward)
	return g, nil
}

// Serve takes nodes' connections on l until ctx ends. It first resumes failing the queues of
// nodes revoked within the window (a restarted API), and keeps looking for revocations made by
// other API replicas.
func (g *Gateway) Serve(ctx context.Context, l net.Listener) error {
	g.resumeRevokedQueues(ctx)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.watchRevocations(ctx)
	}()
	errc := make(chan error, 1)
	go func() { errc <- g.server.Serve(l) }()
	g.log.Info("node gateway listening", "addr", l.Addr().String(), "frontend", g.opts.Frontend, "namespace", g.opts.Namespace)
	select {
	case err := <-errc:
		return fmt.Errorf("node gateway: serve: %w", err)
	case <-ctx.Done():
	}
	// Long polls would hold a graceful stop for a minute: the nodes poll again elsewhere.
	stopped := make(chan struct{})
	go func() { g.server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		g.server.Stop()
	}
	return nil
}

// Close ends the gateway's background work and its connection to the frontend.
func (g *Gateway) Close() error {
	// Under the drains' lock: a revocation either started its drain before (and is waited for)
	// or sees the gateway closed.
	g.drainsMu.Lock()
	g.stopBG()
	g.drainsMu.Unlock()
	g.server.Stop()
	g.wg.Wait()
	return g.conn.Close()
}

// Revoke cuts the node off at once: its calls here are refused from now on and those under
// way cancelled; the tasks it held fail with "node revoked", and so do the tasks that reach its
// queue in the next RevokedQueueWindow. The store must already say it is revoked (other
// replicas learn it there).
func (g *Gateway) Revoke(nodeID, name string) {
	g.cut(nodeID, name, g.opts.now())
}

func (g *Gateway) cut(nodeID, name string, revokedAt time.Time) {
	tasks, first := g.calls.cut(nodeID)
	if !first {
		return
	}
	g.log.Warn("node cut off: revoked", "node_id", nodeID, "node", name, "tasks_held", len(tasks))
	g.startRevokedQueueDrain(nodeID, name, tasks, revokedAt.Add(g.opts.RevokedQueueWindow))
}

// caller is the node behind a call, as its verified certificate says.
type caller struct {
	nodeID, serial string
}

func (g *Gateway) callerOf(ctx context.Context) (caller, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return caller{}, errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return caller{}, errors.New("no verified client certificate")
	}
	leaf := info.State.VerifiedChains[0][0]
	nodeID, ok := NodeIDOf(leaf)
	if !ok {
		return caller{}, errors.New("the client certificate is not a node's")
	}
	// The handshake checked the dates; a connection outlives them.
	if now := g.opts.now(); now.After(leaf.NotAfter) {
		return caller{nodeID: nodeID}, fmt.Errorf("the certificate of node %s expired at %s", nodeID, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return caller{nodeID: nodeID, serial: SerialOf(leaf)}, nil
}

// intercept is every call's gate: who calls, whether the policy allows it, whether the node
// is in good standing; then the call is forwarded under a context its revocation cancels.
func (g *Gateway) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := path.Base(info.FullMethod)
	who, err := g.callerOf(ctx)
	if err != nil {
		g.log.Warn("node gateway refused a call", "node_id", who.nodeID, "method", method, "reason", err.Error())
		return nil, status.Error(codes.Unauthenticated, err.Error())
	}
	log := g.log.With("node_id", who.nodeID, "method", method)
	if g.calls.isCut(who.nodeID) {
		return nil, refuse(log, "the node is revoked")
	}
	if why := g.policy.admit(who.nodeID, req); why != "" {
		return nil, refuse(log, why)
	}
	v, err := g.standings.check(ctx, who.nodeID, who.serial)
	if err != nil {
		log.Error("node gateway cannot check a node", "err", err)
		return nil, status.Error(codes.Unavailable, "the node gateway cannot check the node's standing now; try again")
	}
	if v.revoked {
		g.cut(who.nodeID, v.name, g.opts.now())
	}
	if v.refusal != "" {
		return nil, refuse(log, v.refusal)
	}
	callCtx, done, err := g.calls.begin(ctx, who.nodeID)
	if err != nil {
		return nil, refuse(log, "the node is revoked")
	}
	defer done()
	resp, err := handler(g.upstreamContext(callCtx, who.nodeID), req)
	if errors.Is(context.Cause(callCtx), errNodeCut) {
		return nil, refuse(log, "the node was revoked during the call")
	}
	g.track(who.nodeID, req, resp, err)
	if err != nil {
		return nil, err
	}
	if poll, ok := resp.(*workflowservice.PollActivityTaskQueueResponse); ok && len(poll.GetTaskToken()) > 0 {
		poll.TaskToken = g.policy.tokens.wrap(who.nodeID, poll.GetTaskToken())
	}
	return resp, nil
}

// track keeps the tasks a node holds: taken by a poll, until answered (or gone on Temporal's
// side). Requests carry Temporal's tokens here: the policy unwrapped them.
func (g *Gateway) track(nodeID string, req, resp any, err error) {
	if poll, ok := resp.(*workflowservice.PollActivityTaskQueueResponse); ok && err == nil && len(poll.GetTaskToken()) > 0 {
		g.calls.handedOut(nodeID, poll.GetTaskToken(), g.opts.now())
		return
	}
	if err != nil && status.Code(err) != codes.NotFound {
		return
	}
	switch r := req.(type) {
	case *workflowservice.RespondActivityTaskCompletedRequest:
		g.calls.answered(nodeID, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskFailedRequest:
		g.calls.answered(nodeID, r.GetTaskToken())
	case *workflowservice.RespondActivityTaskCanceledRequest:
		g.calls.answered(nodeID, r.GetTaskToken())
	}
}

// upstreamNodeKey carries the calling node's id to the gateway's client interceptors (the
// payload re-sealing).
type upstreamNodeKey struct{}

// upstreamContext carries to the frontend only the headers it reads of a client: the SDK's
// name and version, and the namespace (the gateway's, whatever the node said); and, for the
// gateway's own interceptors, the node the call is made for.
func (g *Gateway) upstreamContext(ctx context.Context, nodeID string) context.Context {
	ctx = context.WithValue(ctx, upstreamNodeKey{}, nodeID)
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.Pairs("temporal-namespace", g.opts.Namespace)
	for _, key := range []string{"client-name", "client-version", "supported-server-versions"} {
		if v := in.Get(key); len(v) > 0 {
			out.Set(key, v...)
		}
	}
	return metadata.NewOutgoingContext(ctx, out)
}

func refuse(log *slog.Logger, why string) error {
	log.Warn("node gateway refused a call", "reason", why)
	return status.Error(codes.PermissionDenied, "node gateway: "+why)
}

// refuseStream: the WorkflowService has no streaming call a node needs.
func (g *Gateway) refuseStream(_ any, ss grpc.ServerStream, info *grpc.StreamServerInfo, _ grpc.StreamHandler) error {
	who, _ := g.callerOf(ss.Context())
	return refuse(g.log.With("node_id", who.nodeID, "method", info.FullMethod), "not a call an activity worker of the node's own queue makes")
}

// refuseUnknownService answers every other service (operator, health, …) as the policy does.
func (g *Gateway) refuseUnknownService(_ any, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	who, _ := g.callerOf(ss.Context())
	return refuse(g.log.With("node_id", who.nodeID, "method", method), "not a call an activity worker of the node's own queue makes")
}

// loggedCredentials logs the connections the TLS handshake refuses (no certificate, another
// CA's, an expired one): they never reach the interceptor, which logs every other refusal.
type loggedCredentials struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func (c loggedCredentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	if err != nil {
		c.log.Warn("node gateway refused a connection", "remote_addr", conn.RemoteAddr().String(), "reason", err.Error())
	}
	return out, info, err
}

func (c loggedCredentials) Clone() credentials.TransportCredentials {
	return loggedCredentials{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}

// serverCertificate is the gateway's own certificate, issued by the authority in memory and
// issued again once less than a third of its lifetime is left.
func (g *Gateway) serverCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	g.certMu.Lock()
	defer g.certMu.Unlock()
	now := g.opts.now()
	if g.cert == nil || !now.Before(RenewAfter(g.cert.Leaf.NotBefore, g.cert.Leaf.NotAfter)) {
		cert, err := g.opts.Authority.IssueServer(g.opts.Hosts, now, DefaultCertificateLifetime)
		if err != nil {
			g.log.Error("issue the node gateway's certificate", "err", err)
			return nil, err
		}
		g.cert = &cert
	}
	return g.cert, nil
}

// RenewAfter is when a certificate valid from notBefore to notAfter should be renewed: once
// less than a third of its lifetime is left.
func RenewAfter(notBefore, notAfter time.Time) time.Time {
	return notAfter.Add(-notAfter.Sub(notBefore) / 3)
}
