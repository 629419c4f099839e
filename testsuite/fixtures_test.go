package testsuite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	dockerclient "github.com/docker/docker/client"
	"go.temporal.io/api/serviceerror"

	spdocker "github.com/skypanel/skypanel/activities/node/docker"
)

// buildHelloApp compiles testdata/helloapp as a static binary, for FROM scratch images.
func buildHelloApp(workDir string) (string, error) {
	out := filepath.Join(workDir, "helloapp")
	cmd := exec.Command("go", "build", "-o", out, "./testdata/helloapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if raw, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build helloapp: %v\n%s", err, raw)
	}
	return out, nil
}

// gitServer serves bare repositories over dumb HTTP on loopback, as a Git host would.
type gitServer struct {
	root string
	srv  *httptest.Server
}

var (
	gitOnce   sync.Once
	sharedGit *gitServer
)

func gitHost(t testing.TB) *gitServer {
	gitOnce.Do(func() {
		root := filepath.Join(platform.workDir, "git")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		sharedGit = &gitServer{root: root, srv: httptest.NewServer(http.FileServer(http.Dir(root)))}
	})
	return sharedGit
}

// repo is a working copy whose pushes land in a bare repository the gitServer serves.
type repo struct {
	t       testing.TB
	dir     string
	bare    string
	URL     string
	message string
}

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@localhost",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo creates an empty working copy whose pushes land in a bare repository the test git
// host serves at r.URL.
func newRepo(t testing.TB, name string) *repo {
	t.Helper()
	host := gitHost(t)
	r := &repo{t: t, dir: filepath.Join(platform.workDir, "src", name), bare: filepath.Join(host.root, name+".git")}
	r.URL = host.srv.URL + "/" + name + ".git"
	for _, d := range []string{r.dir, r.bare} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	git(t, r.bare, "init", "-q", "--bare", "--initial-branch=main")
	git(t, r.dir, "init", "-q", "--initial-branch=main")
	git(t, r.dir, "remote", "add", "origin", r.bare)
	return r
}

// newHelloRepo creates a repository whose Dockerfile needs no registry: FROM scratch plus the
// static helloapp binary, answering with message.
func newHelloRepo(t testing.TB, name, message string) *repo {
	t.Helper()
	r := newRepo(t, name)
	binary, err := os.ReadFile(platform.helloBinary)
	if err != nil {
		t.Fatal(err)
	}
	r.write("app", string(binary))
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n")
	r.commitMessage(message)
	return r
}

func (r *repo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// commitMessage commits a new message.txt and pushes it.
func (r *repo) commitMessage(message string) string {
	r.message = message
	r.write("message.txt", message)
	return r.commit("message: " + message)
}

func (r *repo) commit(subject string) string {
	git(r.t, r.dir, "add", "-A")
	git(r.t, r.dir, "commit", "-q", "-m", subject)
	git(r.t, r.dir, "push", "-q", "origin", "HEAD:main")
	git(r.t, r.bare, "update-server-info")
	return git(r.t, r.dir, "rev-parse", "HEAD")
}

// slowBuildRepo is an app whose build has a step that takes seconds; its own message keeps
// Docker's build cache from skipping that step.
func slowBuildRepo(t testing.TB, name string) *repo {
	t.Helper()
	return sleepyBuildRepo(t, name, 4)
}

// sleepyBuildRepo is slowBuildRepo with a step of seconds.
func sleepyBuildRepo(t testing.TB, name string, seconds int) *repo {
	t.Helper()
	r := newHelloRepo(t, name, name)
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make deps installs it): %v", err)
	}
	r.write("busybox", string(busybox))
	r.write("Dockerfile", "FROM scratch\nCOPY busybox /bin/busybox\nCOPY message.txt /message.txt\n"+
		"RUN [\"/bin/busybox\", \"sleep\", \""+strconv.Itoa(seconds)+"\"]\nCOPY app /app\nENTRYPOINT [\"/app\"]\n")
	r.commit("slow build")
	return r
}

// liveHelloApp is the starting point of most tests: a new customer whose hello app answers
// message, deployed. It returns the customer, the app, its repository and the deployment.
func liveHelloApp(t testing.TB, prefix, message string) (customer, application, *repo, deployment) {
	t.Helper()
	owner := newCustomer(t, uniqueName(prefix)+"@example.com")
	name := uniqueName(prefix)
	r := newHelloRepo(t, name, message)
	app := owner.createApp(t, name, r.URL)
	dep := owner.deploy(t, app.ID)
	if dep.Status != "succeeded" {
		t.Fatalf("deploy of %s: %+v\n%s", name, dep, owner.logs(t, app.ID, dep.ID))
	}
	return owner, app, r, dep
}

// customer is a signed-up customer with its own organization.
type customer struct {
	token  string
	orgID  string
	userID string
}

func newCustomer(t testing.TB, email string) customer {
	t.Helper()
	var out struct {
		User struct {
			ID             string `json:"id"`
			OrganizationID string `json:"organization_id"`
		}
		Token string
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/admin/users", platform.adminToken,
		map[string]string{"email": email, "name": "Customer " + email}, &out)
	if status != http.StatusCreated || out.Token == "" {
		t.Fatalf("create customer: %d %s", status, raw)
	}
	c := customer{token: out.Token, orgID: out.User.OrganizationID, userID: out.User.ID}
	created.Lock()
	created.customers = append(created.customers, c)
	created.Unlock()
	// With an hourly billing period (make bench) a period of the cheapest plan costs money, and
	// an empty wallet may run nothing: benchmark customers start with a thousand hours of it.
	// The tests' 3-second period costs nothing on that plan, and their wallets stay exact.
	if stackBillingPeriod() != billingPeriod.String() {
		if status, raw := credit(t, c.orgID, 1000, "bench-start-"+c.orgID); status != http.StatusCreated {
			t.Fatalf("credit the benchmark customer: %d %s", status, raw)
		}
	}
	return c
}

type application struct {
	ID                  string  `json:"id"`
	Name                string  `json:"name"`
	Status              string  `json:"status"`
	StatusReason        string  `json:"status_reason"`
	Instances           int     `json:"instances"`
	URL                 string  `json:"url"`
	CurrentDeploymentID *string `json:"current_deployment_id"`
}

func (c customer) createApp(t testing.TB, name, gitURL string) application {
	t.Helper()
	var app application
	status, raw := platform.call(http.MethodPost, "/api/paas/applications", c.token, map[string]string{
		"name": name, "runtime": "dockerfile", "plan": "starter", "region": "local", "git_url": gitURL, "git_branch": "main",
	}, &app)
	if status != http.StatusCreated {
		t.Fatalf("create app %s: %d %s", name, status, raw)
	}
	remember(&created.apps, app.ID)
	return app
}

func (c customer) getApp(t testing.TB, id string) application {
	t.Helper()
	var app application
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+id, c.token, nil, &app); status != http.StatusOK {
		t.Fatalf("get app: %d %s", status, raw)
	}
	return app
}

type deployment struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	WorkflowID    string `json:"workflow_id"`
	CommitSHA     string `json:"commit_sha"`
	FailureReason string `json:"failure_reason"`
}

// deploy starts a deployment and waits until it is succeeded or failed.
func (c customer) deploy(t testing.TB, appID string) deployment {
	t.Helper()
	var started struct {
		DeploymentID string `json:"deployment_id"`
		WorkflowID   string `json:"workflow_id"`
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+appID+"/deploy", c.token, nil, &started)
	if status != http.StatusAccepted || started.DeploymentID == "" || started.WorkflowID == "" {
		t.Fatalf("deploy: %d %s", status, raw)
	}
	return c.waitDeployment(t, appID, started.DeploymentID)
}

func (c customer) waitDeployment(t testing.TB, appID, deploymentID string) deployment {
	t.Helper()
	var dep deployment
	eventually(t, 4*time.Minute, "deployment finished", func() (bool, string) {
		platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/deployments/"+deploymentID, c.token, nil, &dep)
		return dep.Status != "queued" && dep.Status != "building" && dep.Status != "deploying" && dep.Status != "", dep.Status
	})
	return dep
}

func (c customer) logs(t testing.TB, appID, deploymentID string) string {
	t.Helper()
	status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/deployments/"+deploymentID+"/logs", c.token, nil, nil)
	if status != http.StatusOK {
		t.Fatalf("logs: %d %s", status, raw)
	}
	return string(raw)
}

// operation starts stop/start/restart/delete and waits for its workflow to finish.
func (c customer) operation(t testing.TB, appID, op string) {
	t.Helper()
	method, path := http.MethodPost, "/api/paas/applications/"+appID+"/"+op
	if op == "delete" {
		method, path = http.MethodDelete, "/api/paas/applications/"+appID
	}
	var started struct {
		WorkflowID string `json:"workflow_id"`
	}
	status, raw := platform.call(method, path, c.token, nil, &started)
	if status != http.StatusAccepted {
		t.Fatalf("%s: %d %s", op, status, raw)
	}
	c.waitWorkflow(t, started.WorkflowID)
}

// waitWorkflow waits until the operation's workflow has finished, and fails the test if it failed.
func (c customer) waitWorkflow(t testing.TB, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := awaitWorkflow(ctx, workflowID); err != nil {
		t.Fatalf("workflow %s failed: %v", workflowID, err)
	}
}

// awaitWorkflow waits until the workflow has started (a queued operation's starts when its
// turn comes) and then until it has finished; it returns the workflow's error.
func awaitWorkflow(ctx context.Context, workflowID string) error {
	for {
		_, err := platform.temporal.DescribeWorkflowExecution(ctx, workflowID, "")
		var notFound *serviceerror.NotFound
		if err == nil {
			break
		}
		if !errors.As(err, &notFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("workflow %s never started: %w", workflowID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return platform.temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, nil)
}

// appContainers lists the running containers of an app on the local node.
func appContainers(t testing.TB, appID string) []container.Summary {
	t.Helper()
	list, err := platform.docker.ContainerList(context.Background(), container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", "skypanel.app="+appID)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// created remembers what the tests made, so the stack's teardown removes exactly that.
var created struct {
	sync.Mutex
	apps      []string
	customers []customer
}

func remember(list *[]string, id string) {
	created.Lock()
	defer created.Unlock()
	*list = append(*list, id)
}

// removeLeftovers removes the containers, images and networks of the apps and organizations
// the tests created (a test that failed half-way leaves them behind otherwise).
func removeLeftovers(d *dockerclient.Client) {
	ctx := context.Background()
	created.Lock()
	defer created.Unlock()
	for _, appID := range created.apps {
		byApp := filters.NewArgs(filters.Arg("label", "skypanel.app="+appID))
		if list, err := d.ContainerList(ctx, container.ListOptions{All: true, Filters: byApp}); err == nil {
			for _, c := range list {
				_ = d.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
		if imgs, err := d.ImageList(ctx, image.ListOptions{Filters: byApp}); err == nil {
			for _, img := range imgs {
				_, _ = d.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
			}
		}
	}
	for _, c := range created.customers {
		_ = d.NetworkRemove(ctx, spdocker.OrgNetworkName(c.orgID))
	}
}
