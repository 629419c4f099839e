package contract

// An app's share of its node's nginx when its settings name none (0): concurrent client
// connections (past them, 429 for that app only) and the wait for its answer (then 504).
const (
	DefaultMaxConnections     = 512
	DefaultReadTimeoutSeconds = 60
)
