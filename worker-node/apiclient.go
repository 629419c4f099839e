package workernode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// APIClient is the agent's one way of talking to the control plane's /api/paas/agent endpoints.
type APIClient struct {
	base string // API base URL without a trailing slash
	http *http.Client
	// streams carries bodies of any size (backups): no overall timeout, the caller's context
	// bounds it, and the answer must start within streamAnswerTimeout of the body's end.
	streams *http.Client
	token   string // the node token; empty before registration
}

// streamAnswerTimeout: how long the API may take to answer once a streamed body is sent.
const streamAnswerTimeout = 2 * time.Minute

// NewAPIClient talks to the API at baseURL; nodeToken may be empty until registration.
func NewAPIClient(baseURL, nodeToken string) *APIClient {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = streamAnswerTimeout
	return &APIClient{
		base:    strings.TrimRight(baseURL, "/"),
		http:    &http.Client{Timeout: 15 * time.Second},
		streams: &http.Client{Transport: transport},
		token:   nodeToken,
	}
}

// withToken returns a client that authenticates as the node.
func (c *APIClient) withToken(token string) *APIClient {
	cp := *c
	cp.token = token
	return &cp
}

// StatusError is a non-success answer of the API; Body holds the start of its problem JSON.
type StatusError struct {
	Method string // POST when empty
	Path   string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	method := e.Method
	if method == "" {
		method = http.MethodPost
	}
	return fmt.Sprintf("%s %s: HTTP %d: %s", method, e.Path, e.Status, e.Body)
}

// Temporary says whether trying again later may succeed (server errors, rate limiting).
func (e *StatusError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// retryable says whether err is worth another attempt: a network failure or a temporary status.
func retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// post sends body as JSON to path and decodes a 2xx answer into out (when out is not nil).
func (c *APIClient) post(ctx context.Context, path string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return &StatusError{Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", path, err)
	}
	return nil
}

// stream sends method to path with the node token, body streamed as it is read (chunked,
// application/octet-stream) when not nil, and answers a 2xx response, whose body the caller
// closes. Any other answer is a *StatusError.
func (c *APIClient) stream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Accept", "application/json, application/octet-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.streams.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, &StatusError{Method: method, Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(snippet))}
	}
	return resp, nil
}

// RegisterRequest is what a new node tells the control plane about itself.
type RegisterRequest struct {
	RegistrationToken string `json:"registration_token"`
	Hostname          string `json:"hostname"`
	CPUs              int    `json:"cpus"`
	MemoryMB          int64  `json:"memory_mb"`
	// CSR asks for the node's gateway certificate, for a key the agent made (PEM).
	CSR string `json:"csr,omitempty"`
}

// RegisterResponse is the node's identity and credential.
type RegisterResponse struct {
	NodeID    string `json:"node_id"`
	NodeToken string `json:"node_token"`
	TaskQueue string `json:"task_queue"`
	// GatewayCertificate answers the CSR; missing when the control plane could not issue it
	// (the agent then renews with its node token).
	GatewayCertificate *GatewayCertificate `json:"gateway_certificate,omitempty"`
}

// GatewayCertificate is the node's client certificate for the node gateway and the CA that
// issued it (and the gateway's own certificate).
type GatewayCertificate struct {
	Certificate   string    `json:"certificate"`
	CACertificate string    `json:"ca_certificate"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// RenewCertificate has the control plane sign a new key of the node's (csrPEM), authenticated
// by the node token: before the certificate expires, or to get a first one.
func (c *APIClient) RenewCertificate(ctx context.Context, csrPEM string) (GatewayCertificate, error) {
	var out GatewayCertificate
	if err := c.post(ctx, "/api/paas/agent/certificate", map[string]string{"csr": csrPEM}, &out); err != nil {
		return out, err
	}
	if out.Certificate == "" || out.CACertificate == "" {
		return out, errors.New("renew the gateway certificate: the API answered without a certificate")
	}
	return out, nil
}

// Register exchanges a one-time registration token for the node's id and token.
func (c *APIClient) Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error) {
	var resp RegisterResponse
	if err := c.post(ctx, "/api/paas/agent/register", req, &resp); err != nil {
		return resp, err
	}
	if resp.NodeID == "" || resp.NodeToken == "" {
		return resp, errors.New("register: the API answered without a node id or token")
	}
	return resp, nil
}

// Heartbeat is the node's periodic report: alive, how often it reports, and its machine's
// figures. A figure the agent could not read is left out, never sent as zero.
type Heartbeat struct {
	CPUs            int    `json:"cpus"`
	MemoryMB        int64  `json:"memory_mb"`
	AgentVersion    string `json:"agent_version"`
	IntervalSeconds int    `json:"interval_seconds"`
	// Containers is the number of this node's running containers.
	Containers *int `json:"containers,omitempty"`
	// CPUPercent is how busy all CPUs were since the previous heartbeat (absent at the first).
	CPUPercent    *float64 `json:"cpu_percent,omitempty"`
	MemoryUsedMB  *int64   `json:"memory_used_mb,omitempty"`
	MemoryTotalMB *int64   `json:"memory_total_mb,omitempty"`
	// DiskUsedMB and DiskTotalMB are of the filesystem holding Docker's data root.
	DiskUsedMB  *int64   `json:"disk_used_mb,omitempty"`
	DiskTotalMB *int64   `json:"disk_total_mb,omitempty"`
	Load1       *float64 `json:"load1,omitempty"`
	Load5       *float64 `json:"load5,omitempty"`
	Load15      *float64 `json:"load15,omitempty"`
}

// SendHeartbeat reports the node alive.
func (c *APIClient) SendHeartbeat(ctx context.Context, hb Heartbeat) error {
	return c.post(ctx, "/api/paas/agent/heartbeat", hb, nil)
}

// appendLogPath is where a deployment's log chunks go.
func appendLogPath(deploymentID string) string {
	return "/api/paas/agent/deployments/" + url.PathEscape(deploymentID) + "/logs"
}

// InstancesReport is everything of the platform's that runs (or exists) on the node, by app:
// the control plane compares it with what each app should run and heals what is short.
type InstancesReport struct {
	Apps map[string][]ReportedInstance `json:"apps"`
}

// ReportedInstance is one app container as the node sees it.
type ReportedInstance struct {
	Name      string `json:"name"`
	ReleaseID string `json:"release_id"`
	State     string `json:"state"`
}

// InstancesAnswer is the control plane's answer to a report.
type InstancesAnswer struct {
	// ForeignApps are apps the node reported that the control plane placed on another node, or
	// deleted, with no operation of theirs under way: the node removes them.
	ForeignApps []string `json:"foreign_apps"`
}

// SendInstancesReport reports what runs on the node. A control plane that answers nothing
// (204, before it named foreign apps) answers none.
func (c *APIClient) SendInstancesReport(ctx context.Context, r InstancesReport) (InstancesAnswer, error) {
	var answer InstancesAnswer
	err := c.post(ctx, "/api/paas/agent/instances", r, &answer)
	return answer, err
}
