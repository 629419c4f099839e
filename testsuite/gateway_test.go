package testsuite

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/nodegateway"
)

// attacker is a client of the node gateway holding node n's certificate and key, read from the
// node's data dir as anyone who took over the machine would.
func attacker(t testing.TB, n *extraNode) workflowservice.WorkflowServiceClient {
	t.Helper()
	pair, err := os.ReadFile(filepath.Join(n.dataDir, "gateway.pem"))
	if err != nil {
		t.Fatalf("node %s's certificate: %v", n.Name, err)
	}
	cert, err := tls.X509KeyPair(pair, pair)
	if err != nil {
		t.Fatalf("node %s's certificate: %v", n.Name, err)
	}
	return gatewayClient(t, &cert, n)
}

// gatewayClient dials the gateway with cert (none when nil), trusting the CA n was given.
func gatewayClient(t testing.TB, cert *tls.Certificate, n *extraNode) workflowservice.WorkflowServiceClient {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(n.dataDir, "gateway-ca.pem"))
	if err != nil {
		t.Fatalf("the gateway's CA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(platform.gatewayAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return workflowservice.NewWorkflowServiceClient(conn)
}

func normalQueue(name string) *taskqueuepb.TaskQueue {
	return &taskqueuepb.TaskQueue{Name: name, Kind: enumspb.TASK_QUEUE_KIND_NORMAL}
}

// forbiddenCalls are what a node must never get through the gateway: another node's work,
// the control plane's, and the platform's workflows. Each answers the call's error.
func forbiddenCalls(ctx context.Context, svc workflowservice.WorkflowServiceClient, other *extraNode, victimAppID string) map[string]func() error {
	ns := sptemporal.DefaultNamespace
	deleteVictim, _ := json.Marshal(map[string]string{"AppID": victimAppID})
	return map[string]func() error{
		"PollActivityTaskQueue of node " + other.Name: func() error {
			_, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(sptemporal.NodeTaskQueue(other.ID))})
			return err
		},
		"PollActivityTaskQueue of control": func() error {
			_, err := svc.PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: ns, TaskQueue: normalQueue(sptemporal.ControlTaskQueue)})
			return err
		},
		"StartWorkflowExecution of DeleteApp": func() error {
			_, err := svc.StartWorkflowExecution(ctx, &workflowservice.StartWorkflowExecutionRequest{Namespace: ns, WorkflowId: "evil/" + uuid.NewString(),
				RequestId: uuid.NewString(), WorkflowType: &commonpb.WorkflowType{Name: "DeleteApp"}, TaskQueue: normalQueue(sptemporal.ControlTaskQueue),
				Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: deleteVictim}}}})
			return err
		},
		"TerminateWorkflowExecution": func() error {
			_, err := svc.TerminateWorkflowExecution(ctx, &workflowservice.TerminateWorkflowExecutionRequest{Namespace: ns,
				WorkflowExecution: &commonpb.WorkflowExecution{WorkflowId: "drain/" + other.ID}})
			return err
		},
		"GetWorkflowExecutionHistory": func() error {
			_, err := svc.GetWorkflowExecutionHistory(ctx, &workflowservice.GetWorkflowExecutionHistoryRequest{Namespace: ns,
				Execution: &commonpb.WorkflowExecution{WorkflowId: "drain/" + other.ID}})
			return err
		},
		"ListWorkflowExecutions": func() error {
			_, err := svc.ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns})
			return err
		},
		"DeleteSchedule of billing": func() error {
			_, err := svc.DeleteSchedule(ctx, &workflowservice.DeleteScheduleRequest{Namespace: ns, ScheduleId: sptemporal.BillingScheduleID})
			return err
		},
		"RespondActivityTaskCompleted with a forged token": func() error {
			_, err := svc.RespondActivityTaskCompleted(ctx, &workflowservice.RespondActivityTaskCompletedRequest{Namespace: ns, TaskToken: []byte("forged")})
			return err
		},
		"RespondActivityTaskCompletedById": func() error {
			_, err := svc.RespondActivityTaskCompletedById(ctx, &workflowservice.RespondActivityTaskCompletedByIdRequest{Namespace: ns,
				WorkflowId: "drain/" + other.ID, ActivityId: "1"})
			return err
		},
	}
}

// Issue 15: a node may touch only its own work. A client holding node a's certificate and key
// is refused everything but a's own activity work, each refusal logged with a's id and the
// method, while a's own deploys go on through the same gateway; a client without a
// certificate does not connect. The victim app and the billing schedule are untouched.
func TestANodesCertificateReachesOnlyItsOwnWork(t *testing.T) {
	a, b, owner, name, r, app := twoNodesAndAnApp(t, "gwown", "gateway ")
	defer func() {
		owner.deleteAndWait(t, app.ID)
		a.retire(t)
		b.retire(t)
	}()
	if dep := owner.deploy(t, app.ID); dep.Status != "succeeded" {
		t.Fatalf("deploy on node a: %+v\n%s", dep, a.logTail())
	}
	if owner.nodeOf(t, app.ID) != a.ID {
		t.Fatalf("the app is on %s, want node a", owner.nodeOf(t, app.ID))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	svc := attacker(t, a)
	calls := forbiddenCalls(ctx, svc, b, app.ID)
	// The attacker keeps trying while a's next deploy runs through the gateway.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	letThrough := map[string]error{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for what, call := range calls {
				if err := call(); status.Code(err) != codes.PermissionDenied {
					mu.Lock()
					letThrough[what] = err
					mu.Unlock()
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	r.write("v2.txt", "2")
	r.commit("release 2")
	dep := owner.deploy(t, app.ID)
	close(stop)
	wg.Wait()
	if dep.Status != "succeeded" {
		t.Errorf("node a's deploy under attack: %+v\n%s", dep, a.logTail())
	}
	for what, err := range letThrough {
		t.Errorf("%s with node a's certificate: %v, want PermissionDenied", what, err)
	}
	if status, got := throughNginxAt(a.NginxAddr, app.Name+".apps.localhost"); status != http.StatusOK || got != "gateway "+name {
		t.Errorf("the app after the attack: %d %q", status, got)
	}
	if _, err := platform.temporal.ScheduleClient().GetHandle(ctx, sptemporal.BillingScheduleID).Describe(ctx); err != nil {
		t.Errorf("the billing schedule after the attack: %v", err)
	}
	logged, _ := os.ReadFile(platform.logPath)
	if !strings.Contains(string(logged), "node gateway refused a call") || !strings.Contains(string(logged), "node_id="+a.ID) ||
		!strings.Contains(string(logged), "method=StartWorkflowExecution") {
		t.Error("the refusals are not logged with the node's id and the method")
	}

	// Without a certificate, or with one of another CA (node a's id, a key of its own),
	// nothing connects.
	if _, err := gatewayClient(t, nil, a).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("a client without a certificate: %v, want the connection refused", err)
	}
	forged := certificateOfAnotherCA(t, a.ID)
	if _, err := gatewayClient(t, &forged, a).GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("a certificate for node a from another CA: %v, want the connection refused", err)
	}
}

// certificateOfAnotherCA is a client certificate naming nodeID as the platform's CA would, but
// signed by a CA of the attacker's own.
func certificateOfAnotherCA(t testing.TB, nodeID string) tls.Certificate {
	t.Helper()
	ca, err := nodegateway.GenerateAuthority(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeID}}, key)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := ca.IssueNode(nodeID, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(issued.PEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Revoking a node during a deploy on it: the deploy fails at once with a reason that says the
// node was revoked, the node's next poll through the gateway is refused and its token stops
// working. The revoked node is evacuated (it is not asked anything), so its app can be
// deleted.
func TestRevokingANodeDuringADeployFailsItAsRevoked(t *testing.T) {
	a, b, owner, _, _, app := twoNodesAndAnApp(t, "gwrevoke", "revoked ")
	defer func() {
		// The build a was running goes on there, unheard: its image is a's to remove.
		eventually(t, 2*time.Minute, "node a's build has ended", func() (bool, string) {
			busy := buildSleeps(t)
			return busy == 0, strings.Repeat("x", busy)
		})
		owner.waitWorkflow(t, nodeWorkflow(t, a.ID, "evacuate", map[string]bool{"force": false}))
		owner.deleteAndWait(t, app.ID)
		a.retire(t)
		b.retire(t)
	}()
	base := "/api/paas/applications/" + app.ID
	slow := sleepyBuildRepo(t, app.Name+"-slow", 20)
	if status, raw := platform.call(http.MethodPut, base, owner.token, map[string]string{"git_url": slow.URL}, nil); status != http.StatusOK {
		t.Fatalf("point the app at the slow build: %d %s", status, raw)
	}
	deploy := owner.request(t, http.MethodPost, base+"/deploy", nil)
	eventually(t, time.Minute, "the build on node a reaches its slow step", func() (bool, string) {
		text := owner.logs(t, app.ID, deploy.DeploymentID)
		i := strings.Index(text, `"sleep"`)
		return i >= 0 && strings.Contains(text[i:], "Running in"), lastLine(text)
	})
	if owner.nodeOf(t, app.ID) != a.ID {
		t.Fatalf("the app is on %s, want node a", owner.nodeOf(t, app.ID))
	}

	revokedAt := time.Now()
	var revoked struct {
		AdminState string `json:"admin_state"`
	}
	if status, raw := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+a.ID+"/revoke", platform.adminToken, nil, &revoked); status != http.StatusOK || revoked.AdminState != "revoked" {
		t.Fatalf("revoke node a: %d %s", status, raw)
	}
	dep := owner.waitDeployment(t, app.ID, deploy.DeploymentID)
	if dep.Status != "failed" || !strings.Contains(dep.FailureReason, "node revoked") || !strings.Contains(dep.FailureReason, a.Name) {
		t.Errorf("the deploy on the revoked node: %s %q, want failed with a reason saying node %s was revoked", dep.Status, dep.FailureReason, a.Name)
	}
	if wait := time.Since(revokedAt); wait > 30*time.Second {
		t.Errorf("the deploy failed %s after the revoke, want within seconds", wait)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := attacker(t, a).PollActivityTaskQueue(ctx, &workflowservice.PollActivityTaskQueueRequest{Namespace: sptemporal.DefaultNamespace,
		TaskQueue: normalQueue(sptemporal.NodeTaskQueue(a.ID))})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("node a's poll of its own queue after the revoke: %v, want PermissionDenied", err)
	}
	var creds struct {
		NodeToken string `json:"node_token"`
	}
	raw, _ := os.ReadFile(filepath.Join(a.dataDir, "agent.json"))
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	if status, body := platform.call(http.MethodPost, "/api/paas/agent/heartbeat", creds.NodeToken, map[string]any{}, nil); status != http.StatusUnauthorized {
		t.Errorf("node a's token after the revoke: %d %s, want 401", status, body)
	}
	// Its registry credential is gone with it: the gate refuses node a's pulls.
	req, _ := http.NewRequest(http.MethodGet, "http://"+registryGateAddr(t)+"/v2/", nil)
	req.SetBasicAuth(a.ID, creds.NodeToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("node a's registry credential after the revoke: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if events := nodeEvents(t, a.ID); len(events) == 0 || !containsString(events, "revoked") {
		t.Errorf("node a's events %v, want revoked", events)
	}
	// Issuing a revoked node a registration token is refused: it cannot come back.
	if status, body := platform.call(http.MethodPost, "/api/paas/admin/nodes/"+a.ID+"/token", platform.adminToken, nil, nil); status != http.StatusConflict {
		t.Errorf("a registration token for the revoked node: %d %s, want 409", status, body)
	}
}

func containsString(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}
