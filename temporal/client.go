package temporal

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	sdklog "go.temporal.io/sdk/log"
	"google.golang.org/grpc"
)

// DefaultAddress and DefaultNamespace are the dev server's frontend and namespace.
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// ClientConfig says where the Temporal frontend is and how to talk to it.
type ClientConfig struct {
	// Address is the frontend's host:port (TEMPORAL_ADDRESS); default 127.0.0.1:7233.
	Address string
	// Namespace defaults to "default".
	Namespace string

	// Identity names this process in workflow histories; empty = the SDK's pid@host default.
	Identity string
	// DataConverter, when set, replaces the SDK's default converter. This is the seam for the
	// AES-GCM payload codec (converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), codec)).
	DataConverter converter.DataConverter
	// FailureConverter, when set, replaces the SDK's default failure converter. With the payload
	// codec it must be the one from EncryptionConverters, or error messages and stack traces stay
	// in plaintext in histories.
	FailureConverter converter.FailureConverter
	// TLS, when set, is used for the gRPC connection (mTLS to a production cluster, or the node
	// gateway's).
	TLS *tls.Config
	// DialOptions are added to the SDK's own (the agent's dialer, which it closes to move its
	// connections onto a renewed certificate).
	DialOptions []grpc.DialOption
	// WorkerHeartbeatInterval is the SDK's: 0 for its default, negative for none (the agent:
	// the node gateway forwards no worker heartbeat).
	WorkerHeartbeatInterval time.Duration
	// AttemptTimeout bounds one connection attempt; default 5s.
	AttemptTimeout time.Duration
}

// Options returns the SDK client options for cfg (logger may be nil).
func (cfg ClientConfig) Options(logger *slog.Logger) client.Options {
	opts := client.Options{
		HostPort:         cfg.Address,
		Namespace:        cfg.Namespace,
		Identity:         cfg.Identity,
		DataConverter:    cfg.DataConverter,
		FailureConverter: cfg.FailureConverter,
	}
	if opts.HostPort == "" {
		opts.HostPort = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if cfg.TLS != nil {
		opts.ConnectionOptions.TLS = cfg.TLS
	}
	opts.ConnectionOptions.DialOptions = cfg.DialOptions
	opts.WorkerHeartbeatInterval = cfg.WorkerHeartbeatInterval
	if logger != nil {
		opts.Logger = sdklog.NewStructuredLogger(logger.With("component", "temporal-sdk"))
	}
	return opts
}

// Dial connects to the Temporal frontend, retrying with backoff while the server is starting,
// until a connection is made or ctx is done. Give ctx a deadline.
func Dial(ctx context.Context, cfg ClientConfig, logger *slog.Logger) (client.Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := cfg.Options(logger)
	attemptTimeout := cfg.AttemptTimeout
	if attemptTimeout <= 0 {
		attemptTimeout = 5 * time.Second
	}
	backoff := 100 * time.Millisecond
	var lastErr error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		c, err := client.DialContext(actx, opts)
		cancel()
		if err == nil {
			if attempt > 1 {
				logger.Info("connected to Temporal", "address", opts.HostPort, "namespace", opts.Namespace, "attempts", attempt)
			}
			return c, nil
		}
		lastErr = err
		if attempt == 1 || attempt%10 == 0 {
			logger.Info("waiting for Temporal", "address", opts.HostPort, "attempt", attempt, "error", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("temporal: dial %s (namespace %s): %w", opts.HostPort, opts.Namespace, errors.Join(ctx.Err(), lastErr))
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// TriggerCertificateCheck runs the certificates schedule now (a domain was published, a renewal
// forced, an app moved): a run that comes while one runs waits for it, never lost.
func TriggerCertificateCheck(ctx context.Context, c client.Client) error {
	return c.ScheduleClient().GetHandle(ctx, CertificatesScheduleID).Trigger(ctx, client.ScheduleTriggerOptions{
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	})
}
