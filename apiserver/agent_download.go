package apiserver

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// installScript is the node install script with placeholders the API fills in when it serves
// it. Each placeholder stands quoted, so the file is valid bash (and shellcheck-clean) as is.
//
//go:embed install/install.sh
var installScript string

// renderInstallScript fills in the control plane's values, each shell-quoted.
func renderInstallScript(publicURL, gatewayAddress, agentSHA256 string) string {
	return strings.NewReplacer(
		"'@@PUBLIC_URL@@'", shellQuote(publicURL),
		"'@@GATEWAY_ADDRESS@@'", shellQuote(gatewayAddress),
		"'@@AGENT_SHA256@@'", shellQuote(agentSHA256),
	).Replace(installScript)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// agentBinary is the skypanel-agent file nodes download. Its checksum is cached by size and
// modification time: the script endpoint needs no authentication and must not hash tens of MB
// at every request, yet a replaced binary is noticed.
type agentBinary struct {
	path string

	mu      sync.Mutex
	size    int64
	modTime time.Time
	sum     string
}

// checksum is the file's SHA-256 in hex.
func (b *agentBinary) checksum() (string, error) {
	info, err := os.Stat(b.path)
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", b.path)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sum != "" && b.size == info.Size() && b.modTime.Equal(info.ModTime()) {
		return b.sum, nil
	}
	f, err := os.Open(b.path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", b.path, err)
	}
	b.sum, b.size, b.modTime = hex.EncodeToString(h.Sum(nil)), info.Size(), info.ModTime()
	return b.sum, nil
}

func (h nodeInstall) installScriptOperation() huma.Operation {
	return huma.Operation{
		OperationID: "agent-install-script", Method: http.MethodGet, Path: installScriptPath, Tags: []string{"agent"},
		Summary: "The node install script, with this control plane's values filled in",
		Description: "No authentication: the install command pipes it into bash. " +
			"Arguments: `<public url> <registration token> <region> <node name>`. See docs/node-agent.md.",
		Responses: map[string]*huma.Response{
			"200": {Description: "a bash script", Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: "string"}}}},
			"503": {Description: "the control plane lacks a setting or the agent binary"},
		},
	}
}

func (h nodeInstall) serveInstallScript(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
	if missing := h.missingForInstall(false); len(missing) > 0 {
		h.log.WarnContext(ctx, "install script requested, but nodes cannot be installed", "missing", strings.Join(h.missingForInstall(true), "; "))
		return nil, huma.Error503ServiceUnavailable("nodes cannot be installed from this control plane yet: " + strings.Join(missing, "; "))
	}
	sum, err := h.agent.checksum()
	if err != nil {
		return nil, huma.Error503ServiceUnavailable("the control plane has no agent binary to serve")
	}
	script := renderInstallScript(h.cfg.PublicURL, h.cfg.PublicGatewayAddress, sum)
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Content-Type", "text/plain; charset=utf-8")
		hctx.SetHeader("Cache-Control", "no-store")
		hctx.SetStatus(http.StatusOK)
		_, _ = io.WriteString(hctx.BodyWriter(), script)
	}}, nil
}

func (h nodeInstall) agentBinaryOperation() huma.Operation {
	return huma.Operation{
		OperationID: "agent-binary", Method: http.MethodGet, Path: agentBinaryPath, Tags: []string{"agent"},
		Summary:     "The skypanel-agent binary the install script installs",
		Description: "No authentication. The install script checks it against the SHA-256 it was served with.",
		Responses: map[string]*huma.Response{
			"200": {Description: "the agent executable", Content: map[string]*huma.MediaType{"application/octet-stream": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}},
			"503": {Description: "the control plane has no agent binary"},
		},
	}
}

func (h nodeInstall) serveAgentBinary(ctx context.Context, _ *struct{}) (*huma.StreamResponse, error) {
	f, err := os.Open(h.agent.path)
	var info os.FileInfo
	if err == nil {
		info, err = f.Stat()
	}
	if err != nil || !info.Mode().IsRegular() {
		if f != nil {
			_ = f.Close()
		}
		h.log.WarnContext(ctx, "agent binary requested, but it cannot be read", "path", h.agent.path, "error", err)
		return nil, huma.Error503ServiceUnavailable("the control plane has no agent binary to serve")
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer f.Close()
		hctx.SetHeader("Content-Type", "application/octet-stream")
		hctx.SetHeader("Content-Length", strconv.FormatInt(info.Size(), 10))
		hctx.SetHeader("Cache-Control", "no-store")
		hctx.SetStatus(http.StatusOK)
		if _, err := io.Copy(hctx.BodyWriter(), f); err != nil {
			h.log.WarnContext(ctx, "agent binary download ended early", "error", err)
		}
	}}, nil
}
