package docker

import "github.com/skypanel/skypanel/activities/contract"

// LabelDatabase marks a managed database's container and volume with the database's id.
const LabelDatabase = "skypanel.database"

// DatabaseEngine is the catalogue's engine row (contract.DatabaseEngine).
type DatabaseEngine = contract.DatabaseEngine

// StartDatabaseInput runs a managed database: one hardened container named
// DatabaseContainerName(DatabaseID) on its organization's network only (no published port),
// its files on the named volume DatabaseVolumeName(DatabaseID), its password opened on the
// node through the node's own key. Idempotent: a running container of the same database is
// kept, a stopped one started, and the volume (the data) is always kept.
type StartDatabaseInput struct {
	DatabaseID string
	OrgID      string
	Engine     DatabaseEngine
	// User and Database are the names the engine creates at its first start.
	User     string
	Database string
	// PasswordSealed is the password sealed under the platform key, bound to
	// secrets.DatabasePassword(DatabaseID).
	PasswordSealed string
	CPUMillis      int
	MemoryMB       int
	// StorageMB is the plan's storage; recorded on the volume as a label (overlay2 on ext4 has
	// no per-volume quota), see docs/databases.md.
	StorageMB int
}

// StartDatabaseResult names the container and the host name apps of the organization reach it
// by (Docker's DNS on the organization's network).
type StartDatabaseResult struct {
	ContainerID string
	Host        string
}

// WaitDatabaseHealthyInput waits until the database's health command passes, failing early
// (non-retryable, with the container's last output) when the container exits.
type WaitDatabaseHealthyInput struct {
	DatabaseID string
	Engine     DatabaseEngine
}

// RemoveDatabaseInput removes a database's container; with DropVolume its data goes too. Its
// organization's network goes when no container of the organization is left.
type RemoveDatabaseInput struct {
	DatabaseID string
	OrgID      string
	DropVolume bool
}

// StopDatabaseInput stops a database's container (a suspension): its container and volume stay,
// and StartDatabase starts it again.
type StopDatabaseInput struct {
	DatabaseID string
	OrgID      string
}

// DatabaseContainerName is the container (and DNS name on its organization's network) of a
// database.
func DatabaseContainerName(databaseID string) string { return contract.DatabaseHost(databaseID) }

// DatabaseVolumeName is the named volume that holds a database's files.
func DatabaseVolumeName(databaseID string) string { return "skypanel-db-" + databaseID }

// BackupDatabaseInput dumps the database with its engine's DumpCommand (run inside its
// container) and streams the dump to the platform's backup store under BackupID, with
// heartbeats carrying the bytes sent so far.
type BackupDatabaseInput struct {
	DatabaseID string
	BackupID   string
	Engine     DatabaseEngine
}

// BackupDatabaseResult is what the node sent: its size and SHA-256 (hex), computed as it was
// streamed; the control plane checks the stored object against them before the backup counts.
type BackupDatabaseResult struct {
	SizeBytes int64
	SHA256    string
}

// RestoreDatabaseInput restores backup BackupID into the database: the node downloads it from
// the backup store into a private file, refuses it (non-retryable "BackupCorrupt", nothing
// touched) unless its size and SHA-256 match, then runs the engine's RestoreCommand in the
// database's own container with the dump on its stdin, and counts what the database holds.
type RestoreDatabaseInput struct {
	DatabaseID string
	BackupID   string
	Engine     DatabaseEngine
	SizeBytes  int64
	SHA256     string
}

// RestoreDatabaseResult reports what the database holds after the restore (CountCommand's
// number: rows, or keys for Redis).
type RestoreDatabaseResult struct {
	Restored int64
}

// ErrTypeBackupCorrupt: a backup whose stored bytes do not match its recorded checksum.
const ErrTypeBackupCorrupt = "BackupCorrupt"
