package testsuite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skypanel/skypanel/testsuite/fakegithub"
)

// The GitHub the platform talks to in the tests: GitHub is not reachable from here, so the
// harness runs a stand-in that speaks its OAuth, REST and git smart-HTTP shapes.
const (
	githubLogin         = "octo-e2e"
	githubClientID      = "Iv1.e2eclient"
	githubClientSecret  = "e2e-client-secret-3b9c1f"
	githubWebhookSecret = "e2e-webhook-secret-7d41aa"
	// The dashboard the OAuth callback returns to: never fetched, only read from Location.
	githubFrontendURL = "http://127.0.0.1:9/dashboard"
)

// startFakeGitHub starts the stand-in and returns the platform's flags for it (the secrets go
// in files: flags with secret values would show in a process list).
func startFakeGitHub(workDir string) (*fakegithub.Server, []string, error) {
	gh, err := fakegithub.New(filepath.Join(workDir, "github"), githubClientID, githubClientSecret, githubLogin, 4242)
	if err != nil {
		return nil, nil, err
	}
	clientSecret, webhookSecret := filepath.Join(workDir, "github-client-secret"), filepath.Join(workDir, "github-webhook-secret")
	if err := os.WriteFile(clientSecret, []byte(githubClientSecret), 0o600); err != nil {
		return gh, nil, err
	}
	if err := os.WriteFile(webhookSecret, []byte(githubWebhookSecret), 0o600); err != nil {
		return gh, nil, err
	}
	return gh, []string{
		"--github-client-id", githubClientID,
		"--github-client-secret-file", clientSecret,
		"--github-webhook-secret-file", webhookSecret,
		"--github-web-url", gh.URL,
		"--github-api-url", gh.APIURL,
		"--frontend-url", githubFrontendURL,
	}, nil
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
	return http.ErrUseLastResponse
}}

func getNoRedirect(t testing.TB, rawURL string) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirects.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

type githubStatus struct {
	Connected   bool   `json:"connected"`
	Login       string `json:"login"`
	ConnectedAt string `json:"connected_at"`
}

func (c customer) githubStatus(t testing.TB) githubStatus {
	t.Helper()
	var st githubStatus
	if status, raw := platform.call(http.MethodGet, "/api/paas/github/status", c.token, nil, &st); status != http.StatusOK {
		t.Fatalf("github status: %d %s", status, raw)
	}
	return st
}

// githubCallbackURL authorizes at the fake GitHub (which approves at once) and returns the
// callback URL GitHub sends the browser back to, with its code and state.
func (c customer) githubCallbackURL(t testing.TB) string {
	t.Helper()
	var auth struct {
		URL string `json:"url"`
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/github/authorize", c.token, nil, &auth); status != http.StatusOK || auth.URL == "" {
		t.Fatalf("authorize: %d %s", status, raw)
	}
	if !strings.HasPrefix(auth.URL, platform.github.URL+"/login/oauth/authorize?") {
		t.Fatalf("authorize URL %s is not the GitHub's authorize page", auth.URL)
	}
	resp, body := getNoRedirect(t, auth.URL)
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(callback, platform.apiURL+"/api/paas/github/callback?") {
		t.Fatalf("GitHub's authorize page: %d %s, Location %q", resp.StatusCode, body, callback)
	}
	return callback
}

// connectGitHub connects the customer's GitHub account through the OAuth round trip.
func (c customer) connectGitHub(t testing.TB) {
	t.Helper()
	resp, body := getNoRedirect(t, c.githubCallbackURL(t))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != githubFrontendURL+"?github=connected" {
		t.Fatalf("callback: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	if st := c.githubStatus(t); !st.Connected || st.Login != githubLogin {
		t.Fatalf("status after the callback: %+v", st)
	}
}

// newGitHubRepo is a hello repository hosted by the fake GitHub: a working copy whose pushes
// land in the fake's bare repository (r.URL is unused: apps name it owner/repo).
func newGitHubRepo(t testing.TB, name string, private bool, message string) *repo {
	t.Helper()
	bare, err := platform.github.AddRepo(name, private)
	if err != nil {
		t.Fatal(err)
	}
	r := &repo{t: t, dir: filepath.Join(platform.workDir, "src", "github-"+name), bare: bare}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, r.dir, "init", "-q", "--initial-branch=main")
	git(t, r.dir, "remote", "add", "origin", bare)
	binary, err := os.ReadFile(platform.helloBinary)
	if err != nil {
		t.Fatal(err)
	}
	r.write("app", string(binary))
	r.write("Dockerfile", "FROM scratch\nCOPY app /app\nCOPY message.txt /message.txt\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n")
	r.commitMessage(message)
	return r
}

func (c customer) createGitHubApp(t testing.TB, name, repository string, autoDeploy bool) application {
	t.Helper()
	var app application
	status, raw := platform.call(http.MethodPost, "/api/paas/applications", c.token, map[string]any{
		"name": name, "runtime": "dockerfile", "plan": "starter", "region": "local", "github_repository": repository, "auto_deploy": autoDeploy,
	}, &app)
	if status != http.StatusCreated {
		t.Fatalf("create app %s from %s: %d %s", name, repository, status, raw)
	}
	remember(&created.apps, app.ID)
	return app
}

type githubDeployment struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	CommitSHA       string `json:"commit_sha"`
	RequestedCommit string `json:"requested_commit"`
	CommitMessage   string `json:"commit_message"`
	SupersededBy    string `json:"superseded_by"`
	FailureReason   string `json:"failure_reason"`
}

func (c customer) githubDeployments(t testing.TB, appID string) []githubDeployment {
	t.Helper()
	var list struct {
		Items []githubDeployment `json:"items"`
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+appID+"/deployments", c.token, nil, &list); status != http.StatusOK {
		t.Fatalf("deployments: %d %s", status, raw)
	}
	return list.Items
}

// deliver sends a webhook delivery as GitHub would, signed with secret ("" unsigned), to the
// API at apiURL.
func deliver(t testing.TB, apiURL, event, delivery string, body []byte, signature string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, apiURL+"/api/paas/github/webhook", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/e2e")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// push commits message to the repository and delivers its signed push event; it returns the
// commit and the answer.
func push(t testing.TB, r *repo, fullName, delivery, message string) (string, int, string) {
	t.Helper()
	before := git(t, r.dir, "rev-parse", "HEAD")
	sha := r.commitMessage(message)
	body := fakegithub.PushPayload(fullName, "main", before, sha, "message: "+message)
	status, answer := deliver(t, platform.apiURL, "push", delivery, body, fakegithub.Sign([]byte(githubWebhookSecret), body))
	return sha, status, answer
}

// psDuring captures `ps` (every process's arguments and environment) until stop is closed.
func psDuring(stop <-chan struct{}) <-chan []byte {
	out := make(chan []byte, 1)
	go func() {
		var all bytes.Buffer
		for {
			raw, _ := exec.Command("ps", "auxeww").Output()
			all.Write(raw)
			select {
			case <-stop:
				out <- all.Bytes()
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

// filesHolding lists the files under dir whose bytes contain value.
func filesHolding(t testing.TB, dir string, value []byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // sockets, files that vanished meanwhile
		}
		raw, err := os.ReadFile(path)
		if err == nil && bytes.Contains(raw, value) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// The GitHub tests share the fake GitHub's one account: a disconnect revokes its grant, which
// (as at GitHub) ends every token of that account, so they run one after the other (beside the
// other parallel tests), the disconnect last.
func TestGitHub(t *testing.T) {
	t.Parallel()
	t.Run("signed pushes deploy the exact commit once", signedPushesDeployTheExactCommitOnce)
	t.Run("a private repository deploys without its token leaking", aPrivateRepositoryDeploysWithoutItsTokenLeaking)
}

// A customer connects GitHub through OAuth (a forged or replayed state stores nothing), lists
// repositories and branches, creates an app from a private repository and deploys it: nginx
// serves it, the deployment and release record the commit and its message, and the token is in
// no file of .data/, no log, no `ps` output taken during the clone and no history. Disconnecting
// revokes the grant at GitHub and forgets the token, and the app's next deploy is refused with
// what to do.
func aPrivateRepositoryDeploysWithoutItsTokenLeaking(t *testing.T) {
	gh := platform.github
	owner := newCustomer(t, uniqueName("github")+"@example.com")

	// Not connected yet: the GitHub routes say how to connect.
	if st := owner.githubStatus(t); st.Connected {
		t.Fatalf("a new customer is connected: %+v", st)
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/github/repositories", owner.token, nil, nil); status != http.StatusConflict || !strings.Contains(string(raw), "authorize") {
		t.Errorf("repositories before connecting: %d %s, want 409 saying how to connect", status, raw)
	}

	// A forged state (one byte changed), and one replayed, get 400 and store no token.
	callback := owner.githubCallbackURL(t)
	u, _ := url.Parse(callback)
	q := u.Query()
	state := q.Get("state")
	forged := []byte(state)
	forged[len(forged)-3] ^= 0x01
	if forged[len(forged)-3] == state[len(state)-3] || strings.ContainsAny(string(forged[len(forged)-3:]), "=&") {
		forged[len(forged)-3] = 'A'
	}
	q.Set("state", string(forged))
	u.RawQuery = q.Encode()
	tokensBefore := len(gh.Tokens())
	if resp, body := getNoRedirect(t, u.String()); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback with a forged state: %d %s, want 400", resp.StatusCode, body)
	}
	if st := owner.githubStatus(t); st.Connected || len(gh.Tokens()) != tokensBefore {
		t.Fatalf("after a forged state: %+v, %d tokens issued (was %d)", st, len(gh.Tokens()), tokensBefore)
	}
	resp, body := getNoRedirect(t, callback)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != githubFrontendURL+"?github=connected" {
		t.Fatalf("callback: %d %s, Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
	}
	connected := owner.githubStatus(t)
	if !connected.Connected || connected.Login != githubLogin {
		t.Fatalf("status after the callback: %+v", connected)
	}
	tokens := gh.Tokens()
	token := tokens[len(tokens)-1]
	if resp, body := getNoRedirect(t, callback); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "used already") {
		t.Errorf("the same callback again: %d %s, want 400 (used already)", resp.StatusCode, body)
	}
	if st := owner.githubStatus(t); st.ConnectedAt != connected.ConnectedAt || len(gh.Tokens()) != len(tokens) {
		t.Errorf("a replayed state changed the connection: %+v, %d tokens (was %d)", st, len(gh.Tokens()), len(tokens))
	}

	name := uniqueName("private")
	r := newGitHubRepo(t, name, true, "private v1")
	fullName := githubLogin + "/" + name

	// Repositories (paged) and branches.
	var repos struct {
		Repositories []struct {
			FullName string `json:"full_name"`
			Private  bool   `json:"private"`
		} `json:"repositories"`
		NextPage int `json:"next_page"`
	}
	found := false
	for page := 1; page > 0 && !found; page = repos.NextPage {
		repos.NextPage = 0
		if status, raw := platform.call(http.MethodGet, fmt.Sprintf("/api/paas/github/repositories?per_page=2&page=%d", page), owner.token, nil, &repos); status != http.StatusOK {
			t.Fatalf("repositories page %d: %d %s", page, status, raw)
		}
		for _, rp := range repos.Repositories {
			found = found || (rp.FullName == fullName && rp.Private)
		}
	}
	if !found {
		t.Fatalf("%s is not among the repositories", fullName)
	}
	var branches struct {
		Branches []struct {
			Name      string `json:"name"`
			CommitSHA string `json:"commit_sha"`
		} `json:"branches"`
	}
	head := git(t, r.dir, "rev-parse", "HEAD")
	if status, raw := platform.call(http.MethodGet, "/api/paas/github/repositories/"+fullName+"/branches", owner.token, nil, &branches); status != http.StatusOK ||
		len(branches.Branches) != 1 || branches.Branches[0].Name != "main" || branches.Branches[0].CommitSHA != head {
		t.Fatalf("branches: %d %s, want main at %s", status, raw, head)
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/github/repositories/"+githubLogin+"/..%2Fetc/branches", owner.token, nil, nil); status != http.StatusUnprocessableEntity && status != http.StatusNotFound {
		t.Errorf("branches of a hostile name: %d %s", status, raw)
	}

	// The app from the private repository, deployed with ps watched during the clone (the fake
	// GitHub holds the clone for a second so it is seen).
	app := owner.createGitHubApp(t, name, fullName, false)
	gh.SetUploadPackDelay(time.Second)
	stop := make(chan struct{})
	captured := psDuring(stop)
	dep := owner.deploy(t, app.ID)
	close(stop)
	gh.SetUploadPackDelay(0)
	psOutput := <-captured
	if dep.Status != "succeeded" {
		t.Fatalf("deploy of the private repository: %+v\n%s", dep, owner.logs(t, app.ID, dep.ID))
	}
	if _, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); body != "private v1" {
		t.Errorf("nginx serves %q, want private v1", body)
	}
	if !bytes.Contains(psOutput, []byte("git")) {
		t.Error("no git process in the ps output taken during the deploy: its check proves nothing")
	}
	deps := owner.githubDeployments(t, app.ID)
	if len(deps) != 1 || deps[0].CommitSHA != head || deps[0].CommitMessage != "message: private v1" {
		t.Errorf("the deployment records %+v, want commit %s with its message", deps, head)
	}
	var releases struct {
		Items []struct {
			CommitSHA     string `json:"commit_sha"`
			CommitMessage string `json:"commit_message"`
		} `json:"items"`
	}
	if status, raw := platform.call(http.MethodGet, "/api/paas/applications/"+app.ID+"/releases", owner.token, nil, &releases); status != http.StatusOK ||
		len(releases.Items) != 1 || releases.Items[0].CommitSHA != head || releases.Items[0].CommitMessage != "message: private v1" {
		t.Errorf("releases: %d %s, want the commit and its message", status, raw)
	}
	if gh.GitRequests(fullName) == 0 {
		t.Error("the fake GitHub served no authenticated git request: the clone did not use the token")
	}

	// The token, which the clone used, is in no file, log, process list or history.
	tokenValue := map[string]string{"the GitHub token": token}
	assertNotHeld(t, "the ps output taken during the clone", psOutput, tokenValue)
	assertNotHeld(t, "the build log", []byte(owner.logs(t, app.ID, dep.ID)), tokenValue)
	if files := filesHolding(t, platform.dataDir, []byte(token)); len(files) > 0 {
		t.Errorf("files under .data hold the GitHub token in plaintext: %v", files)
	}
	processLog := assertNotInPlatformRecords(t, tokenValue)
	if !bytes.Contains(processLog, []byte("clone token sealed for node")) {
		t.Error("the log does not show the node asking for the clone token: the checks above may prove nothing")
	}

	// Disconnect: the grant is revoked at GitHub, the token forgotten, and a deploy of the
	// private app says to reconnect.
	connectionRow := []byte(owner.userID + "\t4242\t" + githubLogin)
	if !bytes.Contains(pgDump(t), connectionRow) {
		t.Fatal("the user's github_connections row is not in the dump: the check after disconnecting would prove nothing")
	}
	var disconnected struct {
		Revoked bool `json:"revoked"`
	}
	if status, raw := platform.call(http.MethodDelete, "/api/paas/github/disconnect", owner.token, nil, &disconnected); status != http.StatusOK || !disconnected.Revoked {
		t.Fatalf("disconnect: %d %s", status, raw)
	}
	revoked := false
	for _, tok := range gh.Revocations() {
		revoked = revoked || tok == token
	}
	if !revoked {
		t.Error("the fake GitHub saw no revocation of the token")
	}
	if st := owner.githubStatus(t); st.Connected {
		t.Errorf("status after disconnecting: %+v", st)
	}
	if bytes.Contains(pgDump(t), connectionRow) {
		t.Error("the github_connections row of the user is still in the database")
	}
	status, raw := platform.call(http.MethodPost, "/api/paas/applications/"+app.ID+"/deploy", owner.token, nil, nil)
	if status != http.StatusConflict || !strings.Contains(string(raw), "reconnect GitHub") {
		t.Errorf("deploy after disconnecting: %d %s, want 409 saying to reconnect", status, raw)
	}
	if got := owner.githubDeployments(t, app.ID); len(got) != 1 {
		t.Errorf("the refused deploy recorded a deployment: %+v", got)
	}
}

// Signed pushes to the connected branch deploy the pushed commit: the same delivery again, and
// a second delivery of the same commit, start nothing; three pushes during a deploy build only
// the last. Unsigned, wrongly signed, and (on an API without a secret) any delivery is refused
// with 401 and starts nothing.
func signedPushesDeployTheExactCommitOnce(t *testing.T) {
	gh := platform.github
	owner := newCustomer(t, uniqueName("pushes")+"@example.com")
	owner.connectGitHub(t)
	name := uniqueName("pushes")
	r := newGitHubRepo(t, name, false, "push v0")
	fullName := githubLogin + "/" + name
	app := owner.createGitHubApp(t, name, fullName, true)

	// Auto-deploy made the repository's webhook, pointing at this platform with its secret.
	hooks := gh.Hooks(fullName)
	if len(hooks) != 1 || hooks[0].Config.GetURL() != platform.apiURL+"/api/paas/github/webhook" || hooks[0].Config.GetSecret() != githubWebhookSecret {
		t.Fatalf("the repository's hooks: %+v", hooks)
	}

	// Refused deliveries start nothing, and are not remembered (the same id signed is taken).
	body := fakegithub.PushPayload(fullName, "main", "0000000000000000000000000000000000000000", git(t, r.dir, "rev-parse", "HEAD"), "message: push v0")
	for _, c := range []struct{ what, signature string }{
		{"a wrong signature", fakegithub.Sign([]byte("not-the-secret"), body)},
		{"a signature of another body", fakegithub.Sign([]byte(githubWebhookSecret), append(body, ' '))},
		{"no signature", ""},
		{"a malformed signature", "sha1=" + strings.Repeat("0", 40)},
	} {
		if status, answer := deliver(t, platform.apiURL, "push", "refused-"+app.ID, body, c.signature); status != http.StatusUnauthorized {
			t.Errorf("a push with %s: %d %s, want 401", c.what, status, answer)
		}
	}
	t.Run("an API without a webhook secret refuses every delivery", func(t *testing.T) {
		api := startSecretlessAPI(t)
		if status, answer := deliver(t, api, "push", "nosecret-"+app.ID, body, fakegithub.Sign([]byte(githubWebhookSecret), body)); status != http.StatusUnauthorized || !strings.Contains(answer, "no GitHub webhook secret") {
			t.Errorf("a signed push to an API without a secret: %d %s, want 401", status, answer)
		}
		if status, answer := deliver(t, api, "ping", "nosecret-ping-"+app.ID, []byte(`{"zen":"e2e"}`), ""); status != http.StatusUnauthorized {
			t.Errorf("an unsigned ping to an API without a secret: %d %s, want 401", status, answer)
		}
	})
	if got := owner.githubDeployments(t, app.ID); len(got) != 0 {
		t.Fatalf("refused deliveries started deployments: %+v", got)
	}

	// A ping is answered.
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1}`)
	if status, answer := deliver(t, platform.apiURL, "ping", "ping-"+app.ID, ping, fakegithub.Sign([]byte(githubWebhookSecret), ping)); status != http.StatusOK || !strings.Contains(answer, "pong") {
		t.Errorf("ping: %d %s", status, answer)
	}

	// A push deploys its commit; the same delivery again, and another delivery of the same
	// commit, start nothing.
	sha1, status, answer := push(t, r, fullName, "push1-"+app.ID, "push v1")
	if status != http.StatusAccepted || !strings.Contains(answer, `"deployment_id"`) {
		t.Fatalf("push: %d %s", status, answer)
	}
	first := owner.githubDeployments(t, app.ID)
	if len(first) != 1 || first[0].RequestedCommit != sha1 {
		t.Fatalf("after the push: %+v, want one deployment of %s", first, sha1)
	}
	redelivered := fakegithub.PushPayload(fullName, "main", git(t, r.dir, "rev-parse", "HEAD~1"), sha1, "message: push v1")
	if status, answer := deliver(t, platform.apiURL, "push", "push1-"+app.ID, redelivered, fakegithub.Sign([]byte(githubWebhookSecret), redelivered)); status != http.StatusOK || !strings.Contains(answer, `"duplicate":true`) {
		t.Errorf("the same delivery again: %d %s, want 200 duplicate", status, answer)
	}
	if status, answer := deliver(t, platform.apiURL, "push", "push1-again-"+app.ID, redelivered, fakegithub.Sign([]byte(githubWebhookSecret), redelivered)); (status != http.StatusAccepted && status != http.StatusOK) || strings.Contains(answer, `"refused"`) {
		t.Errorf("a second delivery of the same commit: %d %s", status, answer)
	}
	done := owner.waitDeployment(t, app.ID, first[0].ID)
	if done.Status != "succeeded" || done.CommitSHA != sha1 {
		t.Fatalf("the pushed deploy: %+v\n%s", done, owner.logs(t, app.ID, done.ID))
	}
	if _, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); body != "push v1" {
		t.Errorf("after the push nginx serves %q, want push v1", body)
	}
	if got := owner.githubDeployments(t, app.ID); len(got) != 1 {
		t.Errorf("the duplicate deliveries started deployments: %+v", got)
	}

	// Three pushes while a deploy builds: only the last is built.
	slow := sleepyDockerfile(5)
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is not installed (make deps installs it): %v", err)
	}
	r.write("busybox", string(busybox))
	r.write("Dockerfile", slow)
	building, status, answer := push(t, r, fullName, "push2-"+app.ID, "push v2 (slow)")
	if status != http.StatusAccepted {
		t.Fatalf("push 2: %d %s", status, answer)
	}
	eventually(t, 2*time.Minute, "the slow deploy builds", func() (bool, string) {
		for _, d := range owner.githubDeployments(t, app.ID) {
			if d.RequestedCommit == building {
				return d.Status == "building", d.Status
			}
		}
		return false, "not listed"
	})
	var during []string
	for i := 3; i <= 5; i++ {
		sha, status, answer := push(t, r, fullName, fmt.Sprintf("push%d-%s", i, app.ID), fmt.Sprintf("push v%d", i))
		if status != http.StatusAccepted {
			t.Fatalf("push %d: %d %s", i, status, answer)
		}
		during = append(during, sha)
	}
	last := during[len(during)-1]
	var lastDeployment githubDeployment
	eventually(t, 4*time.Minute, "the last push is deployed", func() (bool, string) {
		for _, d := range owner.githubDeployments(t, app.ID) {
			if d.RequestedCommit == last {
				lastDeployment = d
				return d.Status == "succeeded" || d.Status == "failed", d.Status
			}
		}
		return false, "not listed"
	})
	if lastDeployment.Status != "succeeded" || lastDeployment.CommitSHA != last {
		t.Fatalf("the last push's deploy: %+v\n%s", lastDeployment, owner.logs(t, app.ID, lastDeployment.ID))
	}
	if _, body, _ := platform.throughNginx(app.Name + ".apps.localhost"); body != "push v5" {
		t.Errorf("after the pushes nginx serves %q, want push v5", body)
	}
	for _, d := range owner.githubDeployments(t, app.ID) {
		switch d.RequestedCommit {
		case during[0], during[1]:
			if d.Status != "superseded" || d.CommitSHA != "" {
				t.Errorf("a push during the deploy was built: %+v", d)
			}
		case building:
			if d.Status != "succeeded" {
				t.Errorf("the deploy under way when the pushes came: %+v", d)
			}
		}
	}
	if got := owner.githubDeployments(t, app.ID); len(got) != 5 {
		t.Errorf("%d deployments, want 5 (v1, v2, and v3-v5 of which two superseded): %+v", len(got), got)
	}

	// Auto-deploy off removes the webhook.
	if status, raw := platform.call(http.MethodPut, "/api/paas/applications/"+app.ID, owner.token, map[string]any{"auto_deploy": false}, nil); status != http.StatusOK {
		t.Fatalf("auto-deploy off: %d %s", status, raw)
	}
	if hooks := gh.Hooks(fullName); len(hooks) != 0 {
		t.Errorf("auto-deploy off left the hooks %+v", hooks)
	}
	sha, status, answer := push(t, r, fullName, "push6-"+app.ID, "push v6")
	if status != http.StatusOK || strings.Contains(answer, sha) && strings.Contains(answer, "deployment_id") {
		t.Errorf("a push with auto-deploy off: %d %s, want 200 deploying nothing", status, answer)
	}
}

// sleepyDockerfile is the hello app's Dockerfile with a build step of seconds.
func sleepyDockerfile(seconds int) string {
	return "FROM scratch\nCOPY busybox /bin/busybox\nCOPY message.txt /message.txt\n" +
		fmt.Sprintf("RUN [\"/bin/busybox\", \"sleep\", \"%d\"]\n", seconds) + "COPY app /app\nUSER 1000:1000\nENTRYPOINT [\"/app\"]\n"
}

// startSecretlessAPI runs a second `skypanel api` on the stack's database and Temporal, with
// GitHub configured but no webhook secret, as an operator who forgot it would; stopped with the
// test.
func startSecretlessAPI(t *testing.T) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	clientSecret := filepath.Join(platform.workDir, "github-client-secret")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, platform.binary, "api", "--addr", addr, "--node-gateway-addr", "off",
		"--temporal-address", platform.temporalAddr, "--database-url", platformDatabaseURL(t),
		"--secret-key-file", filepath.Join(platform.dataDir, "secret.key"),
		"--backup-dir", filepath.Join(platform.workDir, "secretless-backups"),
		"--github-client-id", githubClientID, "--github-client-secret-file", clientSecret,
		"--github-web-url", platform.github.URL, "--github-api-url", platform.github.APIURL,
		"--github-callback-url", "http://"+addr+"/api/paas/github/callback")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("the secretless API's output:\n%s", output.String())
		}
	})
	eventually(t, time.Minute, "the secretless API answers", func() (bool, string) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
	return "http://" + addr
}
