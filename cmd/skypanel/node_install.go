package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skypanel/skypanel/apiserver"
)

// bindNodeInstall adds `skypanel api`'s settings of how worker nodes join.
func bindNodeInstall(fs *flag.FlagSet, c *apiserver.NodeInstall) {
	fs.StringVar(&c.PublicURL, "public-url", os.Getenv("SKYPANEL_PUBLIC_URL"),
		"the control plane's base URL as worker nodes reach it, e.g. https://panel.example.com; without it no install command is offered (SKYPANEL_PUBLIC_URL)")
	fs.StringVar(&c.PublicGatewayAddress, "public-gateway-address", os.Getenv("SKYPANEL_PUBLIC_GATEWAY_ADDRESS"),
		"the node gateway's host:port as worker nodes dial it (they never reach Temporal itself); default: --public-url's host with --node-gateway-addr's port (SKYPANEL_PUBLIC_GATEWAY_ADDRESS)")
	fs.StringVar(&c.AgentBinary, "agent-binary", envOr("SKYPANEL_AGENT_BINARY", besideThisBinary("skypanel-agent")),
		"the skypanel-agent binary served to nodes the install script sets up (SKYPANEL_AGENT_BINARY)")
	fs.DurationVar(&c.RegistrationTokenTTL, "registration-token-ttl", envDuration("SKYPANEL_REGISTRATION_TOKEN_TTL", apiserver.DefaultRegistrationTokenTTL),
		fmt.Sprintf("how long a node registration token is valid, %s to %s (SKYPANEL_REGISTRATION_TOKEN_TTL)", apiserver.MinRegistrationTokenTTL, apiserver.MaxRegistrationTokenTTL))
}

// besideThisBinary is the path of name in the directory of the running executable ("" when it
// cannot be found, which validation then reports).
func besideThisBinary(name string) string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(self), name)
}
