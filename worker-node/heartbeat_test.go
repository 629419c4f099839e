package workernode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeProc is a /proc with the three files a heartbeat reads.
func fakeProc(t *testing.T, stat, meminfo, loadavg string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range map[string]string{"stat": stat, "meminfo": meminfo, "loadavg": loadavg} {
		if text == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The probe reports every figure it reads; CPU from the second heartbeat on, as the share of
// time busy since the previous one; Docker's data root as the engine names it.
func TestHeartbeatReportsTheMachinesFigures(t *testing.T) {
	proc := fakeProc(t, "cpu  100 0 100 800 0 0 0 0 0 0\n", sampleMemInfo, "0.50 0.25 0.10 1/100 42\n")
	root := t.TempDir()
	askedRoot := 0
	probe := &machineProbe{
		info: SystemInfo{CPUs: 4, MemoryMB: 24104}, procDir: proc,
		containers: func(context.Context) (int, error) { return 7, nil },
		dockerRoot: func(context.Context) (string, error) { askedRoot++; return root, nil },
	}
	ctx := context.Background()
	first := probe.heartbeat(ctx)
	if first.CPUPercent != nil {
		t.Errorf("first heartbeat has CPU %v: there is no previous reading", *first.CPUPercent)
	}
	if first.Containers == nil || *first.Containers != 7 {
		t.Errorf("containers %v", first.Containers)
	}
	if first.MemoryUsedMB == nil || *first.MemoryUsedMB != 24683656/1024-23426552/1024 || *first.MemoryTotalMB != 24683656/1024 {
		t.Errorf("memory %v / %v", first.MemoryUsedMB, first.MemoryTotalMB)
	}
	if first.Load1 == nil || *first.Load1 != 0.5 || *first.Load5 != 0.25 || *first.Load15 != 0.1 {
		t.Errorf("load %v %v %v", first.Load1, first.Load5, first.Load15)
	}
	if first.DiskTotalMB == nil || *first.DiskTotalMB <= 0 || *first.DiskUsedMB > *first.DiskTotalMB {
		t.Errorf("disk %v / %v", first.DiskUsedMB, first.DiskTotalMB)
	}

	// 1000 more ticks, 300 of them busy.
	if err := os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  300 0 200 1500 0 0 0 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := probe.heartbeat(ctx)
	if second.CPUPercent == nil || *second.CPUPercent != 30 {
		t.Errorf("CPU %s, want 30", fmtPtr(second.CPUPercent))
	}
	if askedRoot != 1 {
		t.Errorf("asked the engine for its data root %d times; once it answered, once is enough", askedRoot)
	}
}

// What cannot be read is left out of the heartbeat, never sent as zero, and the rest still goes.
func TestHeartbeatLeavesOutWhatItCannotRead(t *testing.T) {
	proc := fakeProc(t, "", "", "0.5 0.25 0.1 1/100 42\n")
	probe := &machineProbe{
		procDir:    proc,
		containers: func(context.Context) (int, error) { return 0, errors.New("docker is restarting") },
		dockerRoot: func(context.Context) (string, error) { return "", errors.New("docker is restarting") },
	}
	hb := probe.heartbeat(context.Background())
	if hb.Containers != nil || hb.CPUPercent != nil || hb.MemoryUsedMB != nil || hb.MemoryTotalMB != nil {
		t.Errorf("unreadable figures sent: %+v", hb)
	}
	if hb.Load1 == nil {
		t.Error("the readable load was left out too")
	}
	body, err := json.Marshal(hb)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"containers"`, `"cpu_percent"`, `"memory_used_mb"`} {
		if strings.Contains(string(body), field) {
			t.Errorf("%s sent: %s", field, body)
		}
	}
	// The engine's root unknown, the disk falls back to /var/lib/docker or /.
	if hb.DiskTotalMB == nil {
		t.Error("no disk figure although / is readable")
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}

// Two agents may share an engine: a node counts only the containers labelled with its id.
func TestContainersAreCountedByTheNodesLabel(t *testing.T) {
	f := nodeContainersFilter("node-7")
	if got := f.Get("label"); len(got) != 2 || !f.ExactMatch("label", "skypanel.node=node-7") || !f.ExactMatch("label", "skypanel.managed=true") {
		t.Errorf("label filters %v", got)
	}
}
