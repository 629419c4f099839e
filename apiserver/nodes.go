package apiserver

import (
	"context"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
)

func (s *Server) registerNodes() {
	huma.Register(s.api, s.op("admin-list-nodes", http.MethodGet, "/api/paas/admin/nodes", "List worker nodes with status and last heartbeat", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[Node], error) {
			nodes, err := s.store.ListNodes(ctx)
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			return listOf(viewsOf(nodes, nodeView)), nil
		})
	admin := func(id, method, path, summary string, status int) huma.Operation {
		return s.op(id, method, path, summary, "admin", status, true)
	}
	nodeAdmin{store: s.store, drains: temporalDrains{s.temporal}, gateway: s.cfg.NodeGateway, problem: s.problem, log: s.log}.register(s.api, admin)
	newNodeInstall(s.cfg.NodeInstall, s.store, s.cfg.Keyring, s.certs, s.problem, s.log).register(s.api, admin)
}

// heartbeatInput is the agent's report. Every figure is optional (an older agent sends none,
// and an agent sends none it could not read); what is sent must be plausible.
type heartbeatInput struct {
	Body heartbeatBody
}

type heartbeatBody struct {
	CPUs            int      `json:"cpus,omitempty" minimum:"0" maximum:"65536"`
	MemoryMB        int64    `json:"memory_mb,omitempty" minimum:"0" maximum:"1099511627776"`
	Containers      *int     `json:"containers,omitempty" minimum:"0" maximum:"1000000" doc:"running containers of this node"`
	AgentVersion    string   `json:"agent_version,omitempty" maxLength:"64"`
	IntervalSeconds int      `json:"interval_seconds,omitempty" minimum:"1" maximum:"3600" doc:"how often the agent reports: the node is offline after 3 missed intervals"`
	CPUPercent      *float64 `json:"cpu_percent,omitempty" minimum:"0" maximum:"100" doc:"all CPUs busy since the previous heartbeat"`
	MemoryUsedMB    *int64   `json:"memory_used_mb,omitempty" minimum:"0" maximum:"1099511627776"`
	MemoryTotalMB   *int64   `json:"memory_total_mb,omitempty" minimum:"0" maximum:"1099511627776"`
	DiskUsedMB      *int64   `json:"disk_used_mb,omitempty" minimum:"0" maximum:"1099511627776"`
	DiskTotalMB     *int64   `json:"disk_total_mb,omitempty" minimum:"0" maximum:"1099511627776"`
	Load1           *float64 `json:"load1,omitempty" minimum:"0" maximum:"1000000"`
	Load5           *float64 `json:"load5,omitempty" minimum:"0" maximum:"1000000"`
	Load15          *float64 `json:"load15,omitempty" minimum:"0" maximum:"1000000"`
}

// Resolve refuses a used figure above its total, naming the field.
func (b *heartbeatBody) Resolve(_ huma.Context, prefix *huma.PathBuffer) []error {
	var errs []error
	check := func(field string, used, total *int64) {
		if used != nil && total != nil && *used > *total {
			errs = append(errs, &huma.ErrorDetail{Location: prefix.With(field), Value: *used,
				Message: fmt.Sprintf("more than the total of %d", *total)})
		}
	}
	check("memory_used_mb", b.MemoryUsedMB, b.MemoryTotalMB)
	check("disk_used_mb", b.DiskUsedMB, b.DiskTotalMB)
	return errs
}

func (b *heartbeatBody) record() db.NodeHeartbeat {
	return db.NodeHeartbeat{
		CPUs: b.CPUs, MemoryMB: b.MemoryMB, Containers: b.Containers, AgentVersion: b.AgentVersion, IntervalSeconds: b.IntervalSeconds,
		Usage: db.NodeUsage{
			CPUPercent: b.CPUPercent, MemoryUsedMB: b.MemoryUsedMB, MemoryTotalMB: b.MemoryTotalMB,
			DiskUsedMB: b.DiskUsedMB, DiskTotalMB: b.DiskTotalMB, Load1: b.Load1, Load5: b.Load5, Load15: b.Load15,
		},
	}
}

// instancesReportInput is what runs on the node, by app id: every SkyPanel container, running
// or not (see worker-node.InstancesReport).
type instancesReportInput struct {
	Body struct {
		Apps map[string][]reportedInstance `json:"apps" doc:"the node's app containers by app id"`
	}
}

type reportedInstance struct {
	Name      string `json:"name" maxLength:"128"`
	ReleaseID string `json:"release_id" maxLength:"64"`
	State     string `json:"state" maxLength:"32" doc:"Docker's: running, restarting, exited, …"`
}

// instancesReportOutput names the apps the node reported that are not its own any more: the
// agent removes their containers and routes (an evacuated node that came back).
type instancesReportOutput struct {
	Body struct {
		ForeignApps []string `json:"foreign_apps" doc:"apps placed on another node, or deleted, with no operation under way: remove them from this node"`
	}
}

// maxReportedApps bounds one report: far more apps than a node holds, far less than an
// oversized body could claim.
const (
	maxReportedApps         = 20000
	maxReportedInstancesApp = 200
)

type logChunkInput struct {
	DeploymentID string `path:"deploymentId" maxLength:"64"`
	Body         contract.Chunk
}

func (s *Server) registerAgent() {
	s.registerAgentSecrets()
	nodeOp := func(id, path, summary string) huma.Operation {
		return s.nodeOp(id, http.MethodPost, path, summary, http.StatusNoContent)
	}
	huma.Register(s.api, nodeOp("agent-heartbeat", "/api/paas/agent/heartbeat", "A node's periodic liveness report with its machine's figures"),
		func(ctx context.Context, in *heartbeatInput) (*struct{}, error) {
			nodeID, _ := ctx.Value(nodeKey).(string)
			if err := s.store.RecordHeartbeat(ctx, nodeID, in.Body.record()); err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			return &struct{}{}, nil
		})
	reportOp := nodeOp("agent-report-instances", "/api/paas/agent/instances",
		"What runs on the node, by app: the control plane heals apps short of instances from it")
	reportOp.MaxBodyBytes = 8 << 20
	reportOp.DefaultStatus = http.StatusOK
	huma.Register(s.api, reportOp, func(ctx context.Context, in *instancesReportInput) (*instancesReportOutput, error) {
		nodeID, _ := ctx.Value(nodeKey).(string)
		if len(in.Body.Apps) > maxReportedApps {
			return nil, huma.Error422UnprocessableEntity("too many apps in one report",
				&huma.ErrorDetail{Location: "body.apps", Message: fmt.Sprintf("at most %d", maxReportedApps)})
		}
		apps := make(map[string][]db.ReportedInstance, len(in.Body.Apps))
		for appID, list := range in.Body.Apps {
			if len(appID) > 64 || len(list) > maxReportedInstancesApp {
				return nil, huma.Error422UnprocessableEntity("invalid report entry",
					&huma.ErrorDetail{Location: "body.apps", Message: fmt.Sprintf("an app id of at most 64 characters with at most %d instances", maxReportedInstancesApp)})
			}
			reported := make([]db.ReportedInstance, len(list))
			for i, inst := range list {
				reported[i] = db.ReportedInstance{Name: inst.Name, ReleaseID: inst.ReleaseID, State: inst.State}
			}
			apps[appID] = reported
		}
		if err := s.store.RecordNodeReport(ctx, nodeID, apps); err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		reported := make([]string, 0, len(apps))
		for appID := range apps {
			reported = append(reported, appID)
		}
		foreign, err := s.store.ForeignApps(ctx, nodeID, reported)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		out := &instancesReportOutput{}
		out.Body.ForeignApps = append([]string{}, foreign...)
		return out, nil
	})
	s.certs.register(s.api, nodeOp, s.problem)
	huma.Register(s.api, nodeOp("agent-append-log", "/api/paas/agent/deployments/{deploymentId}/logs", "Append a chunk of a deployment's build log"),
		func(ctx context.Context, in *logChunkInput) (*struct{}, error) {
			nodeID, _ := ctx.Value(nodeKey).(string)
			c := in.Body
			chunk := db.NodeLogChunk{DeploymentID: in.DeploymentID, Source: c.Source, Attempt: c.Attempt, Seq: c.Seq, Text: c.Text}
			if err := s.store.AppendLogChunk(ctx, nodeID, chunk); err != nil {
				return nil, s.problem(ctx, "deployment", err)
			}
			return &struct{}{}, nil
		})
}
