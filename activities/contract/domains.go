package contract

// Domain is a custom host name an app serves on besides its system one (<name>.<PLATFORM_DOMAIN>),
// as the control plane sends it to the node that routes the app.
type Domain struct {
	// Hostname is lower case ASCII (an IDN is sent as punycode), validated by the API.
	Hostname string
	// Certificate names the certificate the node serves for Hostname once one is issued; empty:
	// the domain is served over HTTP only.
	Certificate string `json:",omitempty"`
}

// MaxRouteDomains bounds the custom domains a node's route takes (the API allows fewer).
const MaxRouteDomains = 100
