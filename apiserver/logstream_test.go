package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skypanel/skypanel/db"
)

func splitAll(t *testing.T, chunks []string, max int) []logLine {
	t.Helper()
	s := lineSplitter{max: max}
	var lines []logLine
	for i, body := range chunks {
		lines = s.feed(lines, int64(i+1), body, 0)
	}
	end := logPosition{}
	if len(chunks) > 0 {
		end = logPosition{int64(len(chunks)), len(chunks[len(chunks)-1])}
	}
	return s.finish(lines, end)
}

func texts(lines []logLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.text
	}
	return out
}

func TestLineSplitterBuffersPartialLinesAcrossChunks(t *testing.T) {
	lines := splitAll(t, []string{"Step 1/", "3 : FROM scratch\nStep 2/3", " : COPY app /app\n", "\n", "tail without newline"}, 0)
	want := []string{"Step 1/3 : FROM scratch", "Step 2/3 : COPY app /app", "", "tail without newline"}
	if got := texts(lines); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	// Each line's position is right after its terminator, in the chunk that ended it.
	wantEnds := []logPosition{{2, 17}, {3, 17}, {4, 1}, {5, 20}}
	for i, l := range lines {
		if l.end != wantEnds[i] {
			t.Errorf("line %d %q ends at %v, want %v", i, l.text, l.end, wantEnds[i])
		}
	}
}

func TestLineSplitterHandlesCRLFAndLoneCR(t *testing.T) {
	// A CRLF cut between two chunks is one line break; a lone CR is one too (as in SSE).
	lines := splitAll(t, []string{"a\r", "\nb\rc\r\n\r", "d\r"}, 0)
	want := []string{"a", "b", "c", "", "d"}
	if got := texts(lines); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if lines[0].end != (logPosition{2, 1}) || lines[3].end != (logPosition{2, 7}) || lines[4].end != (logPosition{3, 2}) {
		t.Errorf("positions %+v", lines)
	}
	// A trailing CR waits for the next byte: nothing is emitted yet.
	s := lineSplitter{}
	if got := s.feed(nil, 1, "x\r", 0); len(got) != 0 {
		t.Errorf("a line ended by a CR that may be a CRLF was emitted early: %q", texts(got))
	}
}

func TestLineSplitterFeedsFromAnOffset(t *testing.T) {
	s := lineSplitter{}
	got := texts(s.feed(nil, 7, "sent\nnot yet sent\n", 5))
	if len(got) != 1 || got[0] != "not yet sent" {
		t.Errorf("lines %q", got)
	}
}

func TestLineSplitterCutsOverlongLinesBetweenCharacters(t *testing.T) {
	line := strings.Repeat("é", 10) // 20 bytes, 2 per character
	lines := splitAll(t, []string{line[:7], line[7:] + "\n"}, 5)
	var joined strings.Builder
	for _, l := range lines {
		if len(l.text) > 6 || !utf8Valid(l.text) {
			t.Errorf("piece %q: over the limit or cut inside a character", l.text)
		}
		joined.WriteString(l.text)
	}
	if joined.String() != line {
		t.Errorf("pieces %q do not add up to the line", texts(lines))
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// Whatever way the log is cut into chunks, the lines are the same, and joined with LF they are
// the log with its line breaks normalised.
func TestLineSplitterIsIndependentOfChunking(t *testing.T) {
	log := "Cloning x\nStep 1/5 : FROM scratch\r\n ---> \rprogress\r\r\n\nBuilt\n==> Deployed"
	want := splitAll(t, []string{log}, 0)
	normalised := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(log)
	if got := strings.Join(texts(want), "\n"); got != strings.TrimSuffix(normalised, "\n") {
		t.Fatalf("joined lines %q, want %q", got, normalised)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var chunks []string
		for rest := log; rest != ""; {
			n := 1 + rng.IntN(min(len(rest), 6))
			chunks, rest = append(chunks, rest[:n]), rest[n:]
		}
		if got := texts(splitAll(t, chunks, 0)); strings.Join(got, "\x00") != strings.Join(texts(want), "\x00") {
			t.Fatalf("chunks %q gave %q, want %q", chunks, got, texts(want))
		}
	}
}

func TestWantsEventStream(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                              false,
		"text/plain":                    false,
		"*/*":                           false,
		"text/event-stream":             true,
		"Text/Event-Stream; q=0.9":      true,
		"text/plain, text/event-stream": true,
		"text/event-stream;q=0":         false,
	} {
		if got := wantsEventStream(accept); got != want {
			t.Errorf("wantsEventStream(%q) = %v", accept, got)
		}
	}
}

func TestParseLogPosition(t *testing.T) {
	if p, ok := parseLogPosition("42-17"); !ok || p != (logPosition{42, 17}) {
		t.Errorf("42-17: %v %v", p, ok)
	}
	for _, bad := range []string{"", "42", "-1-2", "a-b", "0-3", "4-x"} {
		if _, ok := parseLogPosition(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// fakeLog plays a deployment's log: each status poll moves to the next state (and stays on the
// last).
type fakeLog struct {
	mu     sync.Mutex
	states []fakeState
	polls  int
}

type fakeState struct {
	status string
	result int64
	chunks []db.LogChunk // the chunks visible in this state
}

func (f *fakeLog) current() fakeState {
	return f.states[min(f.polls, len(f.states))-1]
}

func (f *fakeLog) DeploymentLogState(context.Context, string) (db.LogStreamState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.polls++
	st := f.current()
	return db.LogStreamState{Status: st.status, ResultChunkID: st.result}, nil
}

func (f *fakeLog) DeploymentLogChunksAfter(_ context.Context, _ string, afterID int64, limit int) ([]db.LogChunk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []db.LogChunk
	for _, c := range f.current().chunks {
		if c.ID > afterID && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

type sseEvent struct{ id, event, data string }

// parseSSE reads events the way a browser's EventSource does (for the lines this stream
// writes); comments are dropped.
func parseSSE(t *testing.T, raw string) []sseEvent {
	t.Helper()
	var events []sseEvent
	var cur sseEvent
	var data []string
	for _, line := range strings.Split(raw, "\n") {
		switch {
		case line == "":
			if data != nil {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		default:
			t.Fatalf("unexpected line in the stream: %q", line)
		}
	}
	return events
}

// alwaysAwake is a wake channel that always receives: a fakeLog moves on only when read, so
// its stream must be told each time that something changed.
var alwaysAwake = func() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

func runFake(t *testing.T, f *fakeLog, lastEventID string) []sseEvent {
	t.Helper()
	var out bytes.Buffer
	ls := &logStream{
		src: f, deploymentID: "dep", w: &out, flush: func() error { return nil },
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		wake: alwaysAwake,
		poll: time.Millisecond, heartbeat: time.Hour, life: 10 * time.Second, grace: 50 * time.Millisecond,
		errorBudget: time.Second, batch: 2,
	}
	from, resume := parseLogPosition(lastEventID)
	done := make(chan struct{})
	go func() { defer close(done); ls.run(context.Background(), from, resume) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
	return parseSSE(t, out.String())
}

func chunk(id int64, body string) db.LogChunk { return db.LogChunk{ID: id, Body: body} }

func TestLogStreamSendsLinesInLogOrderAndEndsAfterTheResult(t *testing.T) {
	c1, c2, c3, c4 := chunk(11, "Cloning\nStep 1/"), chunk(12, "2 : FROM scratch\n"), chunk(14, "Step 2/2\n"), chunk(20, "\n==> Deployed\n")
	f := &fakeLog{states: []fakeState{
		{status: "queued"},
		{status: "building", chunks: []db.LogChunk{c1}},
		// Chunk 12 commits after chunk 14 became visible: the stream must still send it first.
		{status: "building", chunks: []db.LogChunk{c1, c3}},
		{status: "building", chunks: []db.LogChunk{c1, c2, c3}},
		{status: "deploying", chunks: []db.LogChunk{c1, c2, c3}},
		{status: "succeeded", chunks: []db.LogChunk{c1, c2, c3}},
		{status: "succeeded", result: 20, chunks: []db.LogChunk{c1, c2, c3, c4}},
	}}
	events := runFake(t, f, "")
	var lines []string
	for _, e := range events[:len(events)-1] {
		lines = append(lines, e.data)
	}
	want := []string{"Cloning", "Step 1/2 : FROM scratch", "Step 2/2", "", "==> Deployed"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", lines, want)
	}
	if last := events[len(events)-1]; last.event != "end" || last.data != "succeeded" {
		t.Errorf("last event %+v, want end/succeeded", last)
	}
	if events[1].id != "12-17" {
		t.Errorf("the second line's id is %q, want 12-17", events[1].id)
	}

	// Resuming after the second line sends the rest only.
	f.polls = 0
	resumed := runFake(t, f, events[1].id)
	var rest []string
	for _, e := range resumed[:len(resumed)-1] {
		rest = append(rest, e.data)
	}
	if strings.Join(rest, "|") != strings.Join(want[2:], "|") {
		t.Errorf("resumed lines %q, want %q", rest, want[2:])
	}
}

func TestLogStreamEndsWithoutAResultChunkAfterTheGrace(t *testing.T) {
	// A deployment that failed before its workflow ran has no result chunk; its unfinished last
	// line is sent before the end.
	f := &fakeLog{states: []fakeState{{status: "failed", chunks: []db.LogChunk{chunk(3, "partial")}}}}
	events := runFake(t, f, "")
	if len(events) != 2 || events[0].data != "partial" || events[0].id != "3-7" || events[1].event != "end" || events[1].data != "failed" {
		t.Errorf("events %+v", events)
	}
}

func TestLogStreamStopsWhenTheClientLeaves(t *testing.T) {
	f := &fakeLog{states: []fakeState{{status: "building"}}}
	ctx, cancel := context.WithCancel(context.Background())
	ls := &logStream{
		src: f, deploymentID: "dep", w: io.Discard, flush: func() error { return nil },
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		poll: time.Millisecond, heartbeat: time.Hour, life: time.Hour, grace: time.Hour, errorBudget: time.Hour, batch: 10,
	}
	done := make(chan struct{})
	go func() { defer close(done); ls.run(ctx, logPosition{}, false) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its request")
	}
}

func TestLogsOperationDocumentsBothContentTypes(t *testing.T) {
	s := New(Config{Keyring: testKeyring(t)}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	raw, err := json.Marshal(s.API().OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, In string }
			Responses  map[string]struct {
				Content map[string]json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	op := doc.Paths["/api/paas/applications/{id}/deployments/{deploymentId}/logs"]["get"]
	ok := op.Responses["200"].Content
	if ok["text/plain"] == nil || ok["text/event-stream"] == nil || len(ok) != 2 {
		t.Errorf("200 content types: %v", ok)
	}
	var params []string
	for _, p := range op.Parameters {
		params = append(params, p.In+":"+p.Name)
	}
	if got := strings.Join(params, ","); got != "path:id,path:deploymentId,header:Last-Event-ID" {
		t.Errorf("parameters %s", got)
	}
	if _, ok := op.Responses["404"]; !ok {
		if _, ok := op.Responses["default"]; !ok {
			t.Errorf("no error response documented: %v", op.Responses)
		}
	}
}

func TestServerClosingIsSignalledOnShutdown(t *testing.T) {
	entered := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		closing := serverClosing(r.Context())
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(entered)
		select {
		case <-closing:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Errorf("shutdown waited for the open stream: %v", err)
	}
}

func TestLogStreamReplaysALongFinishedLog(t *testing.T) {
	var chunks []db.LogChunk
	var want []string
	for i := range 300 {
		var body strings.Builder
		for j := range 10 {
			line := strings.Repeat("x", 50) + " " + strconv.Itoa(i*10+j)
			body.WriteString(line + "\n")
			want = append(want, line)
		}
		chunks = append(chunks, chunk(int64(i+1), body.String()))
	}
	f := &fakeLog{states: []fakeState{{status: "failed", result: 300, chunks: chunks}}}
	events := runFake(t, f, "")
	var got []string
	for _, e := range events[:len(events)-1] {
		got = append(got, e.data)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || events[len(events)-1].data != "failed" {
		t.Errorf("replayed %d lines, want %d; last event %+v", len(got), len(want), events[len(events)-1])
	}
}

// liveLog is a deployment's log the test changes while the stream runs; it counts the reads.
type liveLog struct {
	mu     sync.Mutex
	status string
	chunks []db.LogChunk
	reads  int // status polls and chunk queries
}

func (l *liveLog) DeploymentLogState(context.Context, string) (db.LogStreamState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	return db.LogStreamState{Status: l.status}, nil
}

func (l *liveLog) DeploymentLogChunksAfter(_ context.Context, _ string, afterID int64, limit int) ([]db.LogChunk, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	var out []db.LogChunk
	for _, c := range l.chunks {
		if c.ID > afterID && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *liveLog) append(c db.LogChunk) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.chunks = append(l.chunks, c)
}

func (l *liveLog) readCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads
}

// syncBuffer is a stream's output that the test reads while the stream writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startLive runs a stream over l whose heartbeat never comes in a test, until the test ends;
// done is closed when run returns.
func startLive(t *testing.T, l *liveLog, adjust func(*logStream)) (out *syncBuffer, done <-chan struct{}) {
	t.Helper()
	out = &syncBuffer{}
	ls := &logStream{
		src: l, deploymentID: "dep", w: out, flush: func() error { return nil },
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		poll: 20 * time.Millisecond, heartbeat: time.Hour, life: time.Hour, grace: time.Hour,
		errorBudget: time.Hour, batch: 10, authEvery: time.Hour,
	}
	if adjust != nil {
		adjust(ls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() { defer close(finished); ls.run(ctx, logPosition{}, false) }()
	t.Cleanup(func() { cancel(); <-finished })
	return out, finished
}

// eventually waits until cond holds (a deadline for polling, not a timing requirement).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
	}
}

func TestAnIdleStreamReadsNothingUntilWoken(t *testing.T) {
	l := &liveLog{status: "building"}
	wake := make(chan struct{}, 1)
	out, _ := startLive(t, l, func(ls *logStream) { ls.wake = wake })
	eventually(t, "the first read", func() bool { return l.readCount() == 2 })

	// Idle: many poll intervals pass and nothing is read.
	time.Sleep(15 * 20 * time.Millisecond)
	if n := l.readCount(); n != 2 {
		t.Fatalf("an idle stream read %d times after its first read, want 0", n-2)
	}

	// A line arrives and the stream is woken: it reads at once, and sends the line after one
	// more read (the chunk waits behind the horizon until then).
	l.append(chunk(7, "Step 1/3\n"))
	wake <- struct{}{}
	eventually(t, "the line after the wake-up", func() bool { return strings.Contains(out.String(), "data: Step 1/3\n") })
	events := parseSSE(t, out.String())
	if len(events) != 1 || events[0].id != "7-9" {
		t.Errorf("events %+v", events)
	}

	// Idle again once it is sent.
	before := l.readCount()
	time.Sleep(15 * 20 * time.Millisecond)
	if n := l.readCount(); n != before {
		t.Errorf("the stream read %d times after the line was sent, want 0", n-before)
	}
}

func TestChunksBehindTheHorizonAreReadAgainWithoutAWake(t *testing.T) {
	// A chunk is sent only once a later read has seen it: that read comes on the poll
	// interval, with no wake-up and no heartbeat.
	l := &liveLog{status: "building", chunks: []db.LogChunk{chunk(3, "Cloning\n")}}
	out, _ := startLive(t, l, nil)
	eventually(t, "the pending line", func() bool { return strings.Contains(out.String(), "data: Cloning\n") })
}

func TestAStreamWaitingForItsResultChunkReadsAgainWithoutAWake(t *testing.T) {
	// Terminal without a result chunk yet: the stream reads on the poll interval until the
	// grace is over, then ends.
	l := &liveLog{status: "failed"}
	out, done := startLive(t, l, func(ls *logStream) { ls.grace = 100 * time.Millisecond })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a failed deployment did not end after its grace")
	}
	if events := parseSSE(t, out.String()); len(events) != 1 || events[0].event != "end" || events[0].data != "failed" {
		t.Errorf("events %+v", events)
	}
}

func TestTheHeartbeatReadsAgain(t *testing.T) {
	// A lost notification costs at most a heartbeat.
	l := &liveLog{status: "building"}
	out, _ := startLive(t, l, func(ls *logStream) { ls.heartbeat = 50 * time.Millisecond })
	eventually(t, "the first read", func() bool { return l.readCount() >= 2 })
	l.append(chunk(1, "late\n"))
	eventually(t, "the line read at a heartbeat", func() bool { return strings.Contains(out.String(), "data: late\n") })
	if !strings.Contains(out.String(), ": keep-alive\n") {
		t.Errorf("no keep-alive in %q", out.String())
	}
}

func TestARevokedTokenEndsItsStreamWhenNotified(t *testing.T) {
	l := &liveLog{status: "building"}
	var valid atomic.Bool
	valid.Store(true)
	tokenWake := make(chan struct{}, 1)
	out, done := startLive(t, l, func(ls *logStream) {
		ls.tokenWake = tokenWake
		ls.authorized = func(context.Context) (bool, error) { return valid.Load(), nil }
	})
	eventually(t, "the first read", func() bool { return l.readCount() == 2 })
	valid.Store(false)
	tokenWake <- struct{}{}
	waitEnd(t, done, out, "revoked")
}

func TestAnExpiredTokenEndsItsStreamAtItsExpiry(t *testing.T) {
	l := &liveLog{status: "building"}
	expires := time.Now().Add(100 * time.Millisecond)
	out, done := startLive(t, l, func(ls *logStream) {
		ls.tokenExpires = expires
		ls.authorized = func(context.Context) (bool, error) { return !time.Now().After(expires), nil }
	})
	waitEnd(t, done, out, "expired")
}

// waitEnd waits for the stream to end with `event: error` saying why.
func waitEnd(t *testing.T, done <-chan struct{}, out *syncBuffer, why string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a token that no longer works stayed open")
	}
	events := parseSSE(t, out.String())
	if len(events) != 1 || events[0].event != "error" || !strings.Contains(events[0].data, why) {
		t.Errorf("events %+v, want one error saying %q", events, why)
	}
}

// failingLog is a database that does not answer.
type failingLog struct{ liveLog }

func (f *failingLog) DeploymentLogState(context.Context, string) (db.LogStreamState, error) {
	f.mu.Lock()
	f.reads++
	f.mu.Unlock()
	return db.LogStreamState{}, errors.New("connection refused")
}

func TestAStreamRetriesAFailingDatabaseWithoutAWakeUntilItsBudgetIsSpent(t *testing.T) {
	f := &failingLog{}
	var out syncBuffer
	ls := &logStream{
		src: f, deploymentID: "dep", w: &out, flush: func() error { return nil },
		log:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		poll: 10 * time.Millisecond, heartbeat: time.Hour, life: time.Hour, grace: time.Hour,
		errorBudget: 100 * time.Millisecond, batch: 10,
	}
	done := make(chan struct{})
	go func() { defer close(done); ls.run(context.Background(), logPosition{}, false) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its error budget")
	}
	if n := f.readCount(); n < 3 {
		t.Errorf("the stream tried %d times, want a retry every poll interval", n)
	}
}
