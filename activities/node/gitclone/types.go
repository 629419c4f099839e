// Package gitclone fetches an application's source onto a node: a shallow clone of one branch,
// with git run through an argument list (never a shell) and only the allowed transports.
package gitclone

// CloneInput asks for a shallow clone of Branch of GitURL into the node's work area for the
// deployment (the branch's full history when Commit is set). AllowLoopbackHTTP is set only by
// `skypanel dev`: it also accepts http:// URLs whose host is a loopback address, so a local
// repository can be served.
type CloneInput struct {
	AppID        string
	DeploymentID string
	GitURL       string
	Branch       string
	// Commit, when set, is the exact commit to check out (a full 40- or 64-hex SHA on Branch):
	// a heal rebuilds a release's image from its own commit, not the branch's newest.
	Commit            string
	AllowLoopbackHTTP bool
	// GitHubToken clones with the token of the GitHub user who connected the app, fetched from
	// the control plane for this deployment when the clone starts (Activities.Tokens). The
	// token is never carried in the input itself: workflow inputs are stored in its history.
	GitHubToken bool
}

// CloneResult says where the source is and which commit it is.
type CloneResult struct {
	Dir       string
	CommitSHA string
	// CommitMessage is the checked-out commit's full message, trimmed and cut to
	// maxCommitMessageBytes (on a character boundary).
	CommitMessage string
}

// RemoveWorkdirInput asks for a deployment's work area to be removed once the image is built.
type RemoveWorkdirInput struct {
	DeploymentID string
}
