package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/skypanel/skypanel/activities/control/backups"
	"github.com/skypanel/skypanel/activities/control/billing"
	"github.com/skypanel/skypanel/activities/control/certs"
	"github.com/skypanel/skypanel/activities/control/store"
	"github.com/skypanel/skypanel/db"
	sptemporal "github.com/skypanel/skypanel/temporal"
	"github.com/skypanel/skypanel/temporal/convergence"
	"github.com/skypanel/skypanel/temporal/operations"
	"github.com/skypanel/skypanel/workflows"
)

// operationsWatchInterval is how often the control worker checks that every app's queue moves.
const operationsWatchInterval = 5 * time.Second

// nodeSweepInterval is how often the control worker marks silent nodes offline (and prunes
// old node metrics): well inside the shortest offline window, 3 × a 1 s heartbeat.
const nodeSweepInterval = 5 * time.Second

// convergenceInterval is how often the control worker compares what nodes report running with
// what every app should run: as often as agents report (workernode.ReconcileInterval).
const convergenceInterval = 5 * time.Second

func runWorker(ctx context.Context, log *slog.Logger, args []string) error {
	cfg, err := parseControlConfig(log, "worker", args, true, nil)
	if err != nil {
		return err
	}
	st, closeDB, err := openStore(ctx, log, cfg)
	if err != nil {
		return err
	}
	defer closeDB()
	tc, err := dialTemporal(ctx, log, cfg)
	if err != nil {
		return err
	}
	defer tc.Close()
	return runControlWorker(ctx, log, cfg, st, tc)
}

// runControlWorker hosts every workflow and the control-plane activities on the `control`
// queue until ctx is done.
func runControlWorker(ctx context.Context, log *slog.Logger, cfg controlConfig, st *db.Store, tc client.Client) error {
	w := worker.New(tc, sptemporal.ControlTaskQueue, worker.Options{})
	for _, wf := range workflows.All {
		w.RegisterWorkflow(wf)
	}
	ops := &operations.Owner{Store: st, Temporal: tc, Log: log}
	w.RegisterActivity(&store.Activities{Store: st, Routing: cfg.routing(), AllowLoopbackGit: cfg.AllowLoopbackGit,
		KeepReleaseImages: cfg.KeepReleaseImages, Registry: cfg.registry(), Operations: ops, Keyring: cfg.keyring, Backups: cfg.backupStore(),
		Schedules: databaseSchedules{tc}})
	w.RegisterActivity(&billing.Activities{Store: st, Period: cfg.BillingPeriod})
	w.RegisterActivity(&certs.Activities{Store: st, Keyring: cfg.keyring, ACME: cfg.ACME, Trigger: certificateTrigger(tc)})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start control worker: %w", err)
	}
	if err := ensureBillingSchedule(ctx, log, tc, cfg.BillingPeriod); err != nil {
		w.Stop()
		return err
	}
	if err := ensureCertificateSchedule(ctx, log, tc, cfg.CertificateCheck); err != nil {
		w.Stop()
		return err
	}
	log.Info("control worker polling", "task_queue", sptemporal.ControlTaskQueue)
	// Apps short of instances get a heal queued from here (see temporal/convergence).
	checker := &convergence.Checker{Store: st, Ops: ops, Log: log}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checker.Watch(ctx, convergenceInterval)
	}()
	// Certificates left behind by a move are installed on the app's new node within seconds,
	// not at the next daily check.
	certsDone := make(chan struct{})
	go func() {
		defer close(certsDone)
		if cfg.ACME.DirectoryURL != "" {
			watchMovedCertificates(ctx, log, st, certificateTrigger(tc), movedCertificatesInterval)
		}
	}()
	// Nodes that stopped heartbeating are marked offline from here.
	nodesDone := make(chan struct{})
	go func() {
		defer close(nodesDone)
		watchNodes(ctx, log, st, nodeSweepInterval)
	}()
	// Deleted databases' final backups go once their retention has passed.
	finalDone := make(chan struct{})
	go func() {
		defer close(finalDone)
		watchFinalBackups(ctx, log, st, cfg.backupStore(), cfg.FinalBackupRetention, time.Minute)
	}()
	// Queues whose turn a crash lost, and operations past their deadline, move on from here.
	ops.Watch(ctx, operationsWatchInterval)
	<-done
	<-nodesDone
	<-certsDone
	<-finalDone
	w.Stop()
	return nil
}

// watchFinalBackups removes the final backups of deleted databases older than retention,
// every interval until ctx ends.
func watchFinalBackups(ctx context.Context, log *slog.Logger, st *db.Store, store *backups.Stores, retention, interval time.Duration) {
	everyInterval(ctx, interval, func() {
		n, err := backups.ExpireFinalBackups(ctx, st, store, time.Now().Add(-retention))
		if err != nil && ctx.Err() == nil {
			log.Error("expire final backups", "error", err)
		}
		if n > 0 {
			log.Info("final backups of deleted databases expired", "count", n, "retention", retention)
		}
	})
}

// movedCertificatesInterval is how often the control worker looks for certificates a move left
// on another node than their app's.
const movedCertificatesInterval = 10 * time.Second

// watchMovedCertificates runs the certificates schedule when a moved app's domain waits for its
// certificate on its new node.
func watchMovedCertificates(ctx context.Context, log *slog.Logger, st *db.Store, trigger func(context.Context) error, interval time.Duration) {
	everyInterval(ctx, interval, func() {
		waiting, err := st.MovedCertificatesWaiting(ctx, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				log.Error("look for certificates left behind by a move", "error", err)
			}
			return
		}
		if waiting {
			if err := trigger(ctx); err != nil && ctx.Err() == nil {
				log.Warn("run the certificates schedule for a moved app", "error", err)
			}
		}
	})
}

// watchNodes marks silent nodes offline and prunes node metrics past their retention, every
// interval until ctx ends. Every control worker runs it; the store records each transition once.
func watchNodes(ctx context.Context, log *slog.Logger, st *db.Store, interval time.Duration) {
	everyInterval(ctx, interval, func() {
		offline, err := st.MarkSilentNodesOffline(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("mark silent nodes offline", "error", err)
		}
		for _, n := range offline {
			log.Warn("node offline: it missed its heartbeats", "node_id", n.ID, "node", n.Name,
				"last_heartbeat_at", n.LastHeartbeatAt, "heartbeat_interval_seconds", n.HeartbeatIntervalSeconds)
		}
		if _, err := st.PruneNodeMetrics(ctx); err != nil && ctx.Err() == nil {
			log.Error("prune node metrics", "error", err)
		}
	})
}

// everyInterval runs f every interval, the first time one interval from now, until ctx ends.
func everyInterval(ctx context.Context, interval time.Duration, f func()) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		f()
	}
}

// databaseSchedules keeps the databases' backup schedules in Temporal.
type databaseSchedules struct{ tc client.Client }

func (d databaseSchedules) Ensure(ctx context.Context, databaseID, orgID string, every time.Duration) error {
	return sptemporal.EnsureDatabaseBackupSchedule(ctx, d.tc, databaseID, orgID, every)
}

func (d databaseSchedules) Delete(ctx context.Context, databaseID string) error {
	return sptemporal.DeleteDatabaseBackupSchedule(ctx, d.tc, databaseID)
}
