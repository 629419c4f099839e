package contract

// Domain is a custom host name an app serves on besides its system one (<name>.<PLATFORM_DOMAIN>),
// as the control plane sends it to the node that routes the app.
type Domain struct {
	// Hostname is lower case ASCII (an IDN is sent as punycode), validated by the API.
	Hostname string
	// TLS says a certificate for Hostname is installed on the node at its stable path (the
	// node's InstallCertificate activity put it there): the route serves HTTPS for Hostname and
	// redirects its plain HTTP to HTTPS, except for ACME's HTTP-01 challenges. False: the domain
	// is served over HTTP only.
	TLS bool `json:",omitempty"`
}

// MaxRouteDomains bounds the custom domains a node's route takes (the API allows fewer).
const MaxRouteDomains = 100
