package secrets

// Associated data binds each kind of secret to its place, so an envelope copied into another
// record fails to open. One function per kind of secret, used both where it is sealed and where
// it is opened.

// AppEnvValue labels the value of environment variable key of an app.
func AppEnvValue(appID, key string) []byte {
	return []byte("app_env:" + appID + ":" + key)
}

// NodeCAKey labels the private key of the CA that issues the nodes' gateway certificates.
func NodeCAKey() []byte {
	return []byte("node_gateway:ca_key")
}

// NodeTaskTokenKey labels the key the node gateway authenticates its task tokens with.
func NodeTaskTokenKey() []byte {
	return []byte("node_gateway:task_token_key")
}

// NodeKeyEntry labels a node's own key (its keyring entry), stored sealed under the platform
// keyring.
func NodeKeyEntry(nodeID, keyID string) []byte {
	return []byte("node_key:" + nodeID + ":" + keyID)
}

// ACMEAccountKey labels the private key of the platform's account at the ACME CA whose
// directory is directoryURL.
func ACMEAccountKey(directoryURL string) []byte {
	return []byte("acme_account:" + directoryURL)
}

// CertificateKey labels the private key of the TLS certificate of a custom domain (hostname),
// sealed where it is stored and, for the node that serves the domain, under that node's key.
func CertificateKey(hostname string) []byte {
	return []byte("certificate_key:" + hostname)
}

// DatabasePassword labels the password of a managed database, sealed where it is stored and,
// for the node that runs the database, under that node's key.
func DatabasePassword(databaseID string) []byte {
	return []byte("database_password:" + databaseID)
}

// S3SecretKey labels the secret key of the platform's S3 backup store, sealed for the node that
// uploads or downloads a backup of a database placed on it.
func S3SecretKey() []byte {
	return []byte("backup_store:s3_secret_key")
}

// GitHubToken labels a user's GitHub OAuth access token, sealed where it is stored.
func GitHubToken(userID string) []byte {
	return []byte("github_token:" + userID)
}

// GitHubCloneToken labels a GitHub token re-sealed for the node that clones deployment
// deploymentID: it opens for that clone only.
func GitHubCloneToken(deploymentID string) []byte {
	return []byte("github_clone_token:" + deploymentID)
}

// GitHubOAuthState labels the state an OAuth authorization carries through the browser, so a
// state made for one purpose never opens as another secret.
func GitHubOAuthState() []byte {
	return []byte("github_oauth_state")
}
