package contract

// DatabaseEngine is one engine version of the admin-managed catalogue, as a node runs it: the
// control plane reads the row and sends it whole with every database operation, so the node
// needs no catalogue of its own and an admin's change reaches every node.
type DatabaseEngine struct {
	Engine  string // postgresql, mysql, mongodb, redis
	Version string
	Image   string
	// Port is where the engine listens inside the container (never published on the host).
	Port int
	// DataDir is where the engine keeps its files: the database's named volume is mounted there.
	DataDir string
	// Env is the container's environment. Values may name the database's own settings as
	// {{user}}, {{password}}, {{database}} and {{port}}; the node fills them in when it creates
	// the container (the password is opened on the node only, just before).
	Env map[string]string `json:",omitempty"`
	// Command replaces the image's command when set (same placeholders as Env).
	Command []string `json:",omitempty"`
	// HealthCommand runs inside the container (exec form, no placeholders: it reads the
	// container's environment through a shell when it needs to); exit 0 is healthy.
	HealthCommand []string
	// User runs the engine's process ("uid:gid" or a name of the image); empty: the image's.
	User string `json:",omitempty"`
	// DumpCommand writes a consistent dump of the database to its stdout; RestoreCommand reads
	// one on its stdin and restores it into this database (never into another one the dump
	// names); CountCommand prints one number: the rows (or keys) the database holds. Each runs
	// inside the container, exec form, reading the container's environment through a shell.
	DumpCommand    []string `json:",omitempty"`
	RestoreCommand []string `json:",omitempty"`
	CountCommand   []string `json:",omitempty"`
}

// DatabaseHost is the name a managed database answers by on its organization's network (its
// container's name, which Docker's DNS resolves there): what linked apps connect to.
func DatabaseHost(databaseID string) string { return "skypanel-db-" + databaseID }
