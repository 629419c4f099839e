package workernode

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"
)

// Version is the agent's version, reported in heartbeats; set with -ldflags "-X".
var Version = "dev"

// heartbeatLoop reports the node alive every interval until ctx ends. A failed report is logged
// and the loop goes on: the control plane counts a node offline after missed heartbeats.
func heartbeatLoop(ctx context.Context, api *APIClient, interval time.Duration, info SystemInfo, containers func(context.Context) int) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		sendHeartbeat(ctx, api, interval, info, containers)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func sendHeartbeat(ctx context.Context, api *APIClient, interval time.Duration, info SystemInfo, containers func(context.Context) int) {
	ctx, cancel := context.WithTimeout(ctx, interval)
	defer cancel()
	hb := Heartbeat{CPUs: info.CPUs, MemoryMB: info.MemoryMB, Containers: containers(ctx), AgentVersion: Version}
	err := api.SendHeartbeat(ctx, hb)
	var se *StatusError
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
	case errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden):
		slog.ErrorContext(ctx, "heartbeat: the API rejected this node's token; remove agent.json and register the node again", "status", se.Status)
	default:
		slog.WarnContext(ctx, "heartbeat failed", "err", err)
	}
}
