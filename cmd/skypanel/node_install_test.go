package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skypanel/skypanel/apiserver"
)

func parseNodeInstall(t *testing.T, args ...string) apiserver.NodeInstall {
	t.Helper()
	var c apiserver.NodeInstall
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bindNodeInstall(fs, &c)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNodeInstallSettingsComeFromFlagsThenTheEnvironment(t *testing.T) {
	for _, key := range []string{"SKYPANEL_PUBLIC_URL", "SKYPANEL_PUBLIC_GATEWAY_ADDRESS", "SKYPANEL_AGENT_BINARY", "SKYPANEL_REGISTRATION_TOKEN_TTL"} {
		t.Setenv(key, "")
	}
	defaults := parseNodeInstall(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := apiserver.NodeInstall{AgentBinary: filepath.Join(filepath.Dir(self), "skypanel-agent"), RegistrationTokenTTL: 24 * time.Hour}
	if defaults != want {
		t.Errorf("defaults %+v, want %+v", defaults, want)
	}

	t.Setenv("SKYPANEL_PUBLIC_URL", "https://panel.example.com")
	t.Setenv("SKYPANEL_PUBLIC_GATEWAY_ADDRESS", "gateway.example.com:7243")
	t.Setenv("SKYPANEL_AGENT_BINARY", "/opt/skypanel/skypanel-agent")
	t.Setenv("SKYPANEL_REGISTRATION_TOKEN_TTL", "2h")
	fromEnv := parseNodeInstall(t)
	want = apiserver.NodeInstall{PublicURL: "https://panel.example.com", PublicGatewayAddress: "gateway.example.com:7243",
		AgentBinary: "/opt/skypanel/skypanel-agent", RegistrationTokenTTL: 2 * time.Hour}
	if fromEnv != want {
		t.Errorf("from the environment %+v, want %+v", fromEnv, want)
	}

	flags := parseNodeInstall(t, "--public-url", "https://other.example.com", "--registration-token-ttl", "30m")
	if flags.PublicURL != "https://other.example.com" || flags.RegistrationTokenTTL != 30*time.Minute || flags.AgentBinary != "/opt/skypanel/skypanel-agent" {
		t.Errorf("flags over the environment: %+v", flags)
	}
}
