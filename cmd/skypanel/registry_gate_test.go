package main

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// With port 0 the gate keeps the port of its last start when it is free (image names carry
// it), and takes another free one when it is not.
func TestTheRegistryGateKeepsItsPortAcrossRestarts(t *testing.T) {
	portFile := filepath.Join(t.TempDir(), "registry-gate.port")
	first, err := listenRegistryGate(0, portFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr().String()
	first.Close()
	again, err := listenRegistryGate(0, portFile)
	if err != nil {
		t.Fatal(err)
	}
	if again.Addr().String() != addr {
		t.Errorf("after a restart the gate listens on %s, want %s again", again.Addr(), addr)
	}
	// Taken meanwhile by someone else: another port, kept from now on.
	other, err := listenRegistryGate(0, portFile)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	defer again.Close()
	if other.Addr().String() == addr {
		t.Fatal("two listeners on one port")
	}
	if raw, _ := os.ReadFile(portFile); string(raw) != portOf(t, other)+"\n" {
		t.Errorf("the port file holds %q, want the new port %s", raw, portOf(t, other))
	}
}

func portOf(t *testing.T, l net.Listener) string {
	t.Helper()
	_, port, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
