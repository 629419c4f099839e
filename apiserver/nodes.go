package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/activities/contract"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
)

type createNodeInput struct {
	Body struct {
		Name   string `json:"name" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"Node name (RFC 1123 label)"`
		Region string `json:"region" pattern:"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" doc:"Region slug; created when new"`
		Host   string `json:"host,omitempty" maxLength:"253" pattern:"^[A-Za-z0-9.:-]*$" doc:"Address of the node, informational"`
	}
}

type createNodeOutput struct {
	Body struct {
		Node              Node   `json:"node"`
		RegistrationToken string `json:"registration_token" doc:"One-time token the agent registers with. Shown once."`
		AgentCommand      string `json:"agent_command" doc:"How to start the agent on the node"`
	}
}

func (s *Server) registerNodes() {
	huma.Register(s.api, s.op("admin-list-nodes", http.MethodGet, "/api/paas/admin/nodes", "List worker nodes with status and last heartbeat", "admin", 0, true),
		func(ctx context.Context, _ *struct{}) (*items[Node], error) {
			nodes, err := s.store.ListNodes(ctx)
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			return listOf(viewsOf(nodes, nodeView)), nil
		})
	huma.Register(s.api, s.op("admin-create-node", http.MethodPost, "/api/paas/admin/nodes", "Register a worker node and get its one-time registration token", "admin", http.StatusCreated, true),
		func(ctx context.Context, in *createNodeInput) (*createNodeOutput, error) {
			region, err := s.store.EnsureRegion(ctx, in.Body.Region, in.Body.Region)
			if err != nil {
				return nil, s.problem(ctx, "region", err)
			}
			token, hash, err := NewRegistrationToken()
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			node, err := s.store.CreateNode(ctx, in.Body.Name, region.ID, in.Body.Host, hash)
			if errors.Is(err, db.ErrConflict) {
				return nil, huma.Error409Conflict("a node with this name already exists", &huma.ErrorDetail{Location: "body.name", Value: in.Body.Name})
			}
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			out := &createNodeOutput{}
			out.Body.Node, out.Body.RegistrationToken = nodeView(node), token
			out.Body.AgentCommand = fmt.Sprintf("skypanel-agent --api-url <API URL> --registration-token %s --temporal-address <TEMPORAL ADDRESS>", token)
			return out, nil
		})
}

type registerAgentInput struct {
	Body struct {
		RegistrationToken string `json:"registration_token" minLength:"1" maxLength:"200"`
		Hostname          string `json:"hostname,omitempty" maxLength:"253"`
		CPUs              int    `json:"cpus,omitempty" minimum:"0"`
		MemoryMB          int64  `json:"memory_mb,omitempty" minimum:"0"`
	}
}

type registerAgentOutput struct {
	Body struct {
		NodeID    string `json:"node_id"`
		NodeToken string `json:"node_token" doc:"The node's credential for heartbeats and logs. Shown once."`
		TaskQueue string `json:"task_queue"`
	}
}

type heartbeatInput struct {
	Body struct {
		CPUs         int    `json:"cpus,omitempty" minimum:"0"`
		MemoryMB     int64  `json:"memory_mb,omitempty" minimum:"0"`
		Containers   int    `json:"containers,omitempty" minimum:"0"`
		AgentVersion string `json:"agent_version,omitempty" maxLength:"64"`
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
	huma.Register(s.api, huma.Operation{
		OperationID: "agent-register", Method: http.MethodPost, Path: "/api/paas/agent/register", Tags: []string{"agent"},
		Summary: "Exchange a one-time registration token for the node's credential",
	}, func(ctx context.Context, in *registerAgentInput) (*registerAgentOutput, error) {
		nodeToken, nodeHash, err := NewToken(nodeTokenPrefix)
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		node, err := s.store.RegisterNode(ctx, HashToken(in.Body.RegistrationToken), nodeHash, db.NodeRegistration{
			Host: in.Body.Hostname, CPUs: in.Body.CPUs, MemoryMB: in.Body.MemoryMB,
		})
		if errors.Is(err, db.ErrNotFound) {
			return nil, huma.Error401Unauthorized("unknown or already used registration token",
				&huma.ErrorDetail{Location: "body.registration_token", Message: "ask an admin for a new one"})
		}
		if err != nil {
			return nil, s.problem(ctx, "node", err)
		}
		s.log.Info("node registered", "node_id", node.ID, "node", node.Name)
		out := &registerAgentOutput{}
		out.Body.NodeID, out.Body.NodeToken, out.Body.TaskQueue = node.ID, nodeToken, sptemporal.NodeTaskQueue(node.ID)
		return out, nil
	})

	nodeOp := func(id, path, summary string) huma.Operation {
		return huma.Operation{OperationID: id, Method: http.MethodPost, Path: path, Summary: summary, Tags: []string{"agent"},
			DefaultStatus: http.StatusNoContent, Security: userSecurity, Middlewares: huma.Middlewares{s.authenticateNode}}
	}
	huma.Register(s.api, nodeOp("agent-heartbeat", "/api/paas/agent/heartbeat", "A node's periodic liveness and capacity report"),
		func(ctx context.Context, in *heartbeatInput) (*struct{}, error) {
			nodeID, _ := ctx.Value(nodeKey).(string)
			err := s.store.RecordHeartbeat(ctx, nodeID, db.NodeHeartbeat{
				CPUs: in.Body.CPUs, MemoryMB: in.Body.MemoryMB, Containers: in.Body.Containers, AgentVersion: in.Body.AgentVersion,
			})
			if err != nil {
				return nil, s.problem(ctx, "node", err)
			}
			return &struct{}{}, nil
		})
	reportOp := nodeOp("agent-report-instances", "/api/paas/agent/instances",
		"What runs on the node, by app: the control plane heals apps short of instances from it")
	reportOp.MaxBodyBytes = 8 << 20
	huma.Register(s.api, reportOp, func(ctx context.Context, in *instancesReportInput) (*struct{}, error) {
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
		return &struct{}{}, nil
	})
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
