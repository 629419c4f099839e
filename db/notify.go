package db

// Postgres LISTEN/NOTIFY, fanned out inside one process. The triggers of migration 0020 notify
// when a deployment's log or status changes and when an API token is revoked; a Notifier holds
// the process's one listening connection and wakes whoever waits on that deployment or token,
// so a waiting log stream costs no query until something happens.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The channels the triggers of migration 0020 notify; the payload is the row's id.
const (
	// ChannelLog: a deployment's log gained chunks, its status changed, or it was deleted.
	ChannelLog = "skypanel_log"
	// ChannelToken: an API token was deleted or its expiry changed.
	ChannelToken = "skypanel_token"
)

const (
	// notifyPingEvery is how long the listening connection may stay silent before it is pinged:
	// a connection that died without a word (a dropped network path) is replaced within about
	// this, not when TCP keepalive gives up.
	notifyPingEvery   = 30 * time.Second
	notifyPingTimeout = 5 * time.Second
	notifyBackoffMin  = 100 * time.Millisecond
	notifyBackoffMax  = 10 * time.Second
	// notifyApplicationName names the connection in pg_stat_activity.
	notifyApplicationName = "skypanel-notifier"
)

// Notifier listens on ChannelLog and ChannelToken over one connection of its own (outside the
// pool, which it would otherwise hold a connection of for good) and wakes the subscribers of
// each notification's payload. It connects at the first Subscribe. While it is not listening
// (before it first connects, after the connection fails) notifications are lost, so every
// subscriber is woken each time it starts listening: a subscriber reads again after each wake
// and misses nothing.
type Notifier struct {
	connConfig *pgx.ConnConfig
	log        *slog.Logger

	mu      sync.Mutex
	subs    map[notifyKey]map[chan struct{}]struct{}
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type notifyKey struct{ channel, payload string }

// NewNotifier makes a Notifier that connects like pool does. Nothing runs until Subscribe.
func NewNotifier(pool *pgxpool.Pool, log *slog.Logger) *Notifier {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = notifyApplicationName
	return &Notifier{connConfig: cfg, log: log, subs: map[notifyKey]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives when channel is notified with payload (and after
// the Notifier (re)starts listening), and the func that ends the subscription. The channel
// holds one wake-up: a subscriber that has not taken the last one loses nothing by missing the
// next, as both say "read again". Subscribing after Close gives a channel that never receives.
func (n *Notifier) Subscribe(channel, payload string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	key := notifyKey{channel, payload}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ch, func() {}
	}
	if n.subs[key] == nil {
		n.subs[key] = map[chan struct{}]struct{}{}
	}
	n.subs[key][ch] = struct{}{}
	if !n.started {
		n.started = true
		ctx, cancel := context.WithCancel(context.Background())
		n.cancel, n.done = cancel, make(chan struct{})
		go n.run(ctx)
	}
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		delete(n.subs[key], ch)
		if len(n.subs[key]) == 0 {
			delete(n.subs, key)
		}
	}
}

// Close stops listening and waits until the connection is closed.
func (n *Notifier) Close() {
	n.mu.Lock()
	n.closed = true
	cancel, done := n.cancel, n.done
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// run listens until ctx is done, connecting again with a growing backoff when it fails.
func (n *Notifier) run(ctx context.Context) {
	defer close(n.done)
	backoff := notifyBackoffMin
	for {
		listened, err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if listened {
			backoff = notifyBackoffMin // it worked for a while: the next failure is a new one
		}
		n.log.Warn("listen for database notifications", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, notifyBackoffMax)
	}
}

// listen connects, LISTENs, wakes every subscriber and then each notification's, until the
// connection fails or ctx is done. listened tells whether it got as far as listening.
func (n *Notifier) listen(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, n.connConfig)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx)) //nolint:errcheck
	for _, channel := range []string{ChannelLog, ChannelToken} {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			return false, fmt.Errorf("listen on %s: %w", channel, err)
		}
	}
	n.wakeAll()
	n.log.Debug("listening for database notifications")
	for {
		waitCtx, cancel := context.WithTimeout(ctx, notifyPingEvery)
		notification, err := conn.WaitForNotification(waitCtx)
		cancel()
		if notification != nil {
			n.wake(notifyKey{notification.Channel, notification.Payload})
		}
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// Silent for a while: make sure the connection still answers.
			pingCtx, cancel := context.WithTimeout(ctx, notifyPingTimeout)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
		case err != nil:
			return true, fmt.Errorf("wait for a notification: %w", err)
		}
	}
}

// wake wakes key's subscribers without waiting for any of them.
func (n *Notifier) wake(key notifyKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs[key] {
		nudge(ch)
	}
}

// wakeAll wakes every subscriber: notifications may have been lost while nothing listened.
func (n *Notifier) wakeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, chans := range n.subs {
		for ch := range chans {
			nudge(ch)
		}
	}
}

func nudge(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // a wake-up is pending already
	}
}
