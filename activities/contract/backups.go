package contract

// The backup stores a database's backups may go to.
const (
	BackupStoreFile = "file"
	BackupStoreS3   = "s3"
)

// BackupLocation answers a node that is about to upload or download a backup of a database
// placed on it (GET /api/paas/agent/databases/{id}/backups/{backup}/location): the store the
// backup was recorded in and, for S3, where and with which credentials the node reaches it.
type BackupLocation struct {
	// Store is "file" (the node streams through the API) or "s3" (the node streams to S3 itself).
	Store string      `json:"store" enum:"file,s3"`
	S3    *S3Location `json:"s3,omitempty"`
}

// S3Location is an object in the platform's S3 bucket and the credentials that reach it. The
// secret key is sealed under the node's own newest key (secrets.S3SecretKey): it never travels
// or rests in plaintext.
type S3Location struct {
	Endpoint        string `json:"endpoint" doc:"http(s)://host[:port] of the S3 API"`
	Region          string `json:"region"`
	Bucket          string `json:"bucket"`
	Key             string `json:"key" doc:"the backup's object key"`
	AccessKeyID     string `json:"access_key_id"`
	SecretKeySealed string `json:"secret_key_sealed" doc:"the secret key, sealed under the node's newest key"`
}
