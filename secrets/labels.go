package secrets

// Associated data binds each kind of secret to its place, so an envelope copied into another
// record fails to open. One function per kind of secret, used both where it is sealed and where
// it is opened.

// AppEnvValue labels the value of environment variable key of an app.
func AppEnvValue(appID, key string) []byte {
	return []byte("app_env:" + appID + ":" + key)
}

// NodeKeyEntry labels a node's own key (its keyring entry), stored sealed under the platform
// keyring.
func NodeKeyEntry(nodeID, keyID string) []byte {
	return []byte("node_key:" + nodeID + ":" + keyID)
}
