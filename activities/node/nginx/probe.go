package nginx

// Probing: how the router knows nginx really serves what it was given.

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// waitHeader polls nginx with the Host header until an answer carries header = want: a reload
// is asynchronous, so only then does nginx really serve the new configuration.
func (r *Router) waitHeader(ctx context.Context, hostname, header, want string, heartbeat func()) error {
	client := &http.Client{
		Timeout:       2 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	deadline := time.Now().Add(r.opts.ServeTimeout)
	url := "http://" + r.listeners.http.probe + "/"
	var last string
	for {
		if heartbeat != nil {
			heartbeat()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Host = hostname
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			last = fmt.Sprintf("status %d, %s %q", resp.StatusCode, header, resp.Header.Get(header))
			if resp.Header.Get(header) == want {
				return nil
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not answer %s: %s for %s within %s (last answer: %s)", header, want, hostname, r.opts.ServeTimeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // a reload takes effect within milliseconds
		}
	}
}
