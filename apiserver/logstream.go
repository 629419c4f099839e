package apiserver

// Live build logs as Server-Sent Events. The stream reads the deployment's log chunks from
// Postgres (where the agents' posts land), so it needs no in-process state: any API process can
// serve it, and a client reconnecting with Last-Event-ID after a restart continues where it
// left off. It reads when Postgres notifies that the deployment changed (db.Notifier), not on a
// clock: a stream of an idle deployment costs no query between its heartbeats.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/skypanel/skypanel/db"
)

const (
	// logPollEvery is how soon the stream reads again while it must (chunks wait behind the
	// horizon, the end grace runs, the database fails), and how often at most it reads however
	// often it is woken.
	logPollEvery = 300 * time.Millisecond
	// logHeartbeatEvery is how long the stream stays silent at most: then it sends a comment,
	// reads again and checks its token, a safety net for a notification that was lost.
	logHeartbeatEvery = 15 * time.Second
	logStreamMaxLife  = time.Hour
	// logEndGrace bounds the wait for the result chunk once the deployment has ended: a
	// deployment that ends without one (a workflow that could not start) still ends its stream.
	logEndGrace = 5 * time.Second
	// logStoreErrorBudget is how long the stream rides out a failing database before it closes
	// (the client reconnects with Last-Event-ID).
	logStoreErrorBudget = 10 * time.Second
	logChunkBatch       = 256
	logWriteTimeout     = 30 * time.Second
	logSendBytes        = 64 << 10
	// logMaxLineBytes bounds what one stream buffers for a line that has not ended yet; a longer
	// line is sent in pieces of about this size (cut between UTF-8 characters).
	logMaxLineBytes = 64 << 10
	// logAuthEvery is how often a busy stream (one that never waits a whole heartbeat) checks
	// its token again, in case the revocation's notification was lost. A revocation normally
	// ends the stream at once (ChannelToken), an expiry at its time.
	logAuthEvery = logHeartbeatEvery
)

const eventStreamType = "text/event-stream"

// wantsEventStream tells whether an Accept header asks for Server-Sent Events.
func wantsEventStream(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mediaType, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(mediaType), eventStreamType) {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(p, "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// logPosition is a place in a deployment's log: offset bytes into the chunk whose ID is chunk.
// Each event's id is the position right after its line, so a client that reconnects with
// Last-Event-ID gets the lines after it.
type logPosition struct {
	chunk  int64
	offset int
}

func (p logPosition) String() string {
	return strconv.FormatInt(p.chunk, 10) + "-" + strconv.Itoa(p.offset)
}

func parseLogPosition(s string) (logPosition, bool) {
	c, o, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return logPosition{}, false
	}
	chunk, err1 := strconv.ParseInt(c, 10, 64)
	offset, err2 := strconv.Atoi(o)
	if err1 != nil || err2 != nil || chunk <= 0 || offset < 0 {
		return logPosition{}, false
	}
	return logPosition{chunk: chunk, offset: offset}, true
}

// logLine is one line of the log without its terminator, and the position after it.
type logLine struct {
	text string
	end  logPosition
}

// lineSplitter cuts a log that arrives in chunks into lines. Lines end with LF, CRLF or a lone
// CR, as SSE itself defines lines, so no line can carry a line break into the stream. A line a
// chunk leaves unfinished waits for the next chunk (or for finish). A CR at the end of a chunk
// waits too, until the next byte tells whether it is a CRLF.
type lineSplitter struct {
	buf   []byte
	cr    bool // buf ended with a CR whose next byte is not known yet
	crEnd logPosition
	max   int // 0: logMaxLineBytes
}

// feed appends the lines that body completes (from byte from on) to lines.
func (s *lineSplitter) feed(lines []logLine, chunk int64, body string, from int) []logLine {
	limit := s.max
	if limit <= 0 {
		limit = logMaxLineBytes
	}
	for i := from; i < len(body); i++ {
		c := body[i]
		if s.cr {
			s.cr = false
			if c == '\n' {
				lines = s.emit(lines, logPosition{chunk, i + 1})
				continue
			}
			lines = s.emit(lines, s.crEnd)
		}
		switch c {
		case '\n':
			lines = s.emit(lines, logPosition{chunk, i + 1})
		case '\r':
			s.cr, s.crEnd = true, logPosition{chunk, i + 1}
		default:
			if len(s.buf) >= limit && utf8.RuneStart(c) {
				lines = s.emit(lines, logPosition{chunk, i})
			}
			s.buf = append(s.buf, c)
		}
	}
	return lines
}

// finish appends the last, unterminated line, if any; end is the position after the log.
func (s *lineSplitter) finish(lines []logLine, end logPosition) []logLine {
	if s.cr {
		s.cr = false
		return s.emit(lines, s.crEnd)
	}
	if len(s.buf) > 0 {
		return s.emit(lines, end)
	}
	return lines
}

func (s *lineSplitter) emit(lines []logLine, end logPosition) []logLine {
	lines = append(lines, logLine{text: string(s.buf), end: end})
	s.buf = s.buf[:0]
	return lines
}

// logSource is the part of the store a log stream reads.
type logSource interface {
	DeploymentLogState(ctx context.Context, deploymentID string) (db.LogStreamState, error)
	DeploymentLogChunksAfter(ctx context.Context, deploymentID string, afterID int64, limit int) ([]db.LogChunk, error)
}

// logStream writes one deployment's log as Server-Sent Events: one event per line (`id:` its
// position, `data:` the line), a comment as heartbeat, and `event: end` with the deployment's
// final status once it has ended and every line has been sent.
type logStream struct {
	src          logSource
	deploymentID string
	w            io.Writer
	flush        func() error
	setDeadline  func(time.Time) // may be nil
	log          *slog.Logger
	closing      <-chan struct{} // the server shuts down; may be nil
	// wake receives when the deployment's log or status may have changed (nil: never; the
	// heartbeat still reads).
	wake <-chan struct{}
	// authorized tells whether the stream's token still works (may be nil: always). It is
	// asked when tokenWake receives, when tokenExpires passes (zero: never), at each heartbeat
	// and at least every authEvery.
	authorized   func(context.Context) (bool, error)
	tokenWake    <-chan struct{}
	tokenExpires time.Time
	authEvery    time.Duration

	poll, heartbeat, life, grace, errorBudget time.Duration
	batch                                     int
	maxLine                                   int
}

func (s *Server) newLogStream(hctx huma.Context, deploymentID string) *logStream {
	w := hctx.BodyWriter()
	ls := &logStream{
		src: s.store, deploymentID: deploymentID, w: w, log: s.log,
		closing: serverClosing(hctx.Context()),
		poll:    logPollEvery, heartbeat: logHeartbeatEvery, life: logStreamMaxLife,
		grace: logEndGrace, errorBudget: logStoreErrorBudget, batch: logChunkBatch,
		flush: func() error { return nil },
	}
	if rw, ok := w.(http.ResponseWriter); ok {
		rc := http.NewResponseController(rw)
		ls.flush = rc.Flush
		ls.setDeadline = func(t time.Time) { _ = rc.SetWriteDeadline(t) }
	} else if f, ok := w.(http.Flusher); ok {
		ls.flush = func() error { f.Flush(); return nil }
	}
	return ls
}

// streamLog answers with the deployment's log as Server-Sent Events. The caller has checked
// that the deployment is the caller's.
func (s *Server) streamLog(hctx huma.Context, deploymentID, lastEventID string, token db.Principal) {
	hctx.SetHeader("Content-Type", eventStreamType)
	hctx.SetHeader("Cache-Control", "no-cache")
	hctx.SetHeader("X-Accel-Buffering", "no") // a proxy in front must not buffer the stream
	hctx.SetStatus(http.StatusOK)
	ls := s.newLogStream(hctx, deploymentID)
	tokenID := token.TokenID
	ls.authorized = func(ctx context.Context) (bool, error) { return s.store.APITokenValid(ctx, tokenID) }
	ls.authEvery = logAuthEvery
	if token.TokenExpiresAt != nil {
		ls.tokenExpires = *token.TokenExpiresAt
	}
	// Subscribed before the first read: a change committed after it wakes the stream.
	if s.notifier != nil {
		var stopLog, stopToken func()
		ls.wake, stopLog = s.notifier.Subscribe(db.ChannelLog, deploymentID)
		defer stopLog()
		ls.tokenWake, stopToken = s.notifier.Subscribe(db.ChannelToken, tokenID)
		defer stopToken()
	}
	from, resume := parseLogPosition(lastEventID)
	ls.run(hctx.Context(), from, resume)
}

// run streams until the log has ended, the client has gone, the server shuts down or the
// stream has lived its maximum. Only the first way sends `event: end`; in the others the client
// reconnects with Last-Event-ID.
//
// Between reads it waits: for a wake-up (the deployment changed), for the heartbeat (which
// reads too, in case a notification was lost), and for the poll interval only while it must
// read again soon: chunks wait behind the horizon, the end grace runs or the database fails.
// An idle deployment's stream therefore reads nothing between heartbeats.
//
// Chunk IDs come from a sequence, and concurrent inserts can become visible out of ID order. A
// chunk is therefore sent only once a poll has seen a chunk with an ID at least as high (the
// "horizon"): an insert that took a lower ID was in flight then and has committed by the next
// poll. The log's result chunk, written after the terminal status, closes the log: once the
// status is terminal everything up to it is safe at once.
func (ls *logStream) run(ctx context.Context, from logPosition, resume bool) {
	var (
		afterID       int64 // chunks up to this ID have been read
		skipChunk     int64 // resuming: the chunk whose first skipOffset bytes were sent before
		skipOffset    int
		horizon       int64
		split         = lineSplitter{max: ls.maxLine}
		consumed      logPosition // after the last byte read
		lines         []logLine
		out           bytes.Buffer
		terminalSince time.Time
		failingSince  time.Time
		lastWrite     = time.Now()
		gone          bool // a write failed: the client has left
	)
	if resume {
		afterID, skipChunk, skipOffset = from.chunk-1, from.chunk, from.offset
		horizon = afterID
	}
	if !ls.send(nil) { // the headers, at once
		return
	}
	life := time.NewTimer(ls.life)
	defer life.Stop()
	heartbeat := time.NewTimer(ls.heartbeat)
	defer heartbeat.Stop()
	poll := time.NewTimer(ls.poll) // armed only while a read is due
	poll.Stop()
	defer poll.Stop()
	var expiry <-chan time.Time
	if !ls.tokenExpires.IsZero() {
		t := time.NewTimer(time.Until(ls.tokenExpires))
		defer t.Stop()
		expiry = t.C
	}
	lastAuth := time.Now()
	checkAuth := false

	for {
		if ls.authorized != nil && (checkAuth || time.Since(lastAuth) >= ls.authEvery) {
			checkAuth, lastAuth = false, time.Now()
			// A failing database is ridden out like the reads below; a token that no longer
			// works ends the stream, saying why (the reconnect then gets its 401).
			if ok, err := ls.authorized(ctx); err == nil && !ok {
				ls.send([]byte("event: error\ndata: unauthorized: the token was revoked or has expired\n\n"))
				return
			}
		}
		lastRead := time.Now()
		st, res, err := ls.read(ctx, afterID, horizon, func(c db.LogChunk) {
			from := 0
			if skipChunk != 0 {
				if c.ID == skipChunk {
					from = min(skipOffset, len(c.Body))
				}
				skipChunk = 0
			}
			lines = split.feed(lines[:0], c.ID, c.Body, from)
			for _, l := range lines {
				writeLogEvent(&out, l)
			}
			afterID, consumed = c.ID, logPosition{c.ID, len(c.Body)}
			if out.Len() >= logSendBytes && !gone { // a long log catching up goes out in parts
				gone = !ls.send(out.Bytes())
				out.Reset()
				lastWrite = time.Now()
			}
		})
		if gone {
			return
		}
		readSoon := res.pending // the chunks behind the horizon
		switch {
		case errors.Is(err, db.ErrNotFound): // the deployment (its app) was deleted
			return
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			ls.log.WarnContext(ctx, "stream deployment log", "deployment_id", ls.deploymentID, "error", err)
			if time.Since(failingSince) > ls.errorBudget {
				return
			}
			readSoon = true
		default:
			failingSince = time.Time{}
			horizon = max(horizon, res.seen)
			terminal := st.Status == db.DeploymentSucceeded || st.Status == db.DeploymentFailed
			if terminal && terminalSince.IsZero() {
				terminalSince = time.Now()
			}
			ended := terminal && !res.pending &&
				((st.ResultChunkID > 0 && afterID >= st.ResultChunkID) || time.Since(terminalSince) >= ls.grace)
			if ended {
				for _, l := range split.finish(lines[:0], consumed) {
					writeLogEvent(&out, l)
				}
				out.WriteString("event: end\ndata: " + st.Status + "\n\n")
				ls.send(out.Bytes())
				return
			}
			readSoon = readSoon || terminal // the result chunk, or the end of the grace
		}
		if out.Len() > 0 || time.Since(lastWrite) >= ls.heartbeat {
			if out.Len() == 0 {
				out.WriteString(": keep-alive\n\n")
			}
			if !ls.send(out.Bytes()) {
				return
			}
			out.Reset()
			lastWrite = time.Now()
		}
		heartbeat.Reset(ls.heartbeat - time.Since(lastWrite))
		pollArmed := readSoon
		if pollArmed {
			poll.Reset(ls.poll)
		}
	wait:
		for {
			var pollC <-chan time.Time
			wake := ls.wake
			if pollArmed {
				// A read is due anyway; a wake-up meanwhile stays pending for the next wait.
				pollC, wake = poll.C, nil
			}
			select {
			case <-ctx.Done():
				return
			case <-ls.closing:
				return
			case <-life.C:
				return
			case <-wake:
				// At once after a quiet spell; however often the log grows, at most one read
				// per poll interval.
				poll.Reset(max(0, ls.poll-time.Since(lastRead)))
				pollArmed = true
			case <-pollC:
				break wait
			case <-heartbeat.C:
				checkAuth = true
				break wait
			case <-ls.tokenWake:
				checkAuth = true
				break wait
			case <-expiry:
				expiry, checkAuth = nil, true
				break wait
			}
		}
	}
}

// readResult is what one poll found beyond the status.
type readResult struct {
	seen    int64 // the highest chunk ID seen
	pending bool  // chunks were seen that are not safe to send yet
}

// read polls the status, then hands each chunk that is safe to send to use, in order.
func (ls *logStream) read(ctx context.Context, afterID, horizon int64, use func(db.LogChunk)) (db.LogStreamState, readResult, error) {
	var res readResult
	st, err := ls.src.DeploymentLogState(ctx, ls.deploymentID)
	if err != nil {
		return st, res, err
	}
	safe := horizon
	if terminal := st.Status == db.DeploymentSucceeded || st.Status == db.DeploymentFailed; terminal && st.ResultChunkID > safe {
		safe = st.ResultChunkID
	}
	for {
		chunks, err := ls.src.DeploymentLogChunksAfter(ctx, ls.deploymentID, afterID, ls.batch)
		if err != nil {
			return st, res, err
		}
		for _, c := range chunks {
			res.seen = max(res.seen, c.ID)
			if c.ID > safe {
				res.pending = true
				continue
			}
			if !res.pending {
				use(c)
				afterID = c.ID
			}
		}
		if res.pending || len(chunks) < ls.batch {
			return st, res, nil
		}
	}
}

// writeLogEvent writes one line as an event. A line holds no CR or LF (lineSplitter cut there),
// so it cannot end the data field early or forge a field.
func writeLogEvent(out *bytes.Buffer, l logLine) {
	out.WriteString("id: ")
	out.WriteString(l.end.String())
	out.WriteString("\ndata: ")
	out.WriteString(l.text)
	out.WriteString("\n\n")
}

// send writes p and flushes; false when the client is gone.
func (ls *logStream) send(p []byte) bool {
	if ls.setDeadline != nil {
		ls.setDeadline(time.Now().Add(logWriteTimeout))
	}
	if len(p) > 0 {
		if _, err := ls.w.Write(p); err != nil {
			return false
		}
	}
	return ls.flush() == nil
}

// shutdownSignals holds, per *http.Server, a channel closed when it shuts down: Shutdown waits
// for running handlers, and a stream would otherwise hold it up until its deadline.
var shutdownSignals sync.Map // *http.Server → chan struct{}

// serverClosing is closed when the http.Server serving ctx's request shuts down (nil outside
// one).
func serverClosing(ctx context.Context) <-chan struct{} {
	srv, _ := ctx.Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return nil
	}
	ch := make(chan struct{})
	actual, loaded := shutdownSignals.LoadOrStore(srv, ch)
	if !loaded {
		srv.RegisterOnShutdown(func() { close(ch) })
	}
	return actual.(chan struct{})
}
