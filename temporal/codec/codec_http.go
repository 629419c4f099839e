package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/skypanel/skypanel/secrets"
)

// ErrCodecUnauthenticated is what an authorize func wraps when the caller did not prove who it
// is; the codec handler answers 401 for it and 403 for any other authorize error.
var ErrCodecUnauthenticated = errors.New("temporal codec: not authenticated")

// maxCodecRequestBytes bounds one encode/decode request. The UI batches a page of payloads; this is
// far above that and far below what would let one caller pin the API's memory.
const maxCodecRequestBytes = 4 << 20

// codecHandler speaks the protocol itself rather than through the SDK's
// converter.NewPayloadCodecHTTPHandler: that one answers errors in plain text and reads
// unbounded bodies, and the UI and API clients here expect problem JSON.
type codecHandler struct {
	codec          converter.PayloadCodec
	authorize      func(*http.Request) error
	allowedOrigins []string
}

// NewCodecHandler serves the Temporal Web UI's remote codec protocol (POST .../encode and
// .../decode with {"payloads": [...]}) so an operator's browser can read encrypted histories.
// Decoding hands out plaintext, so authorize runs on every request except CORS preflights; wrap
// ErrCodecUnauthenticated in its error to answer 401 rather than 403. allowedOrigins are exact
// origins such as "http://localhost:8233"; other origins get no CORS headers.
func NewCodecHandler(ring *secrets.Keyring, authorize func(*http.Request) error, allowedOrigins []string) http.Handler {
	if authorize == nil {
		panic("temporal: NewCodecHandler needs an authorize func (decoding returns plaintext)")
	}
	origins := make([]string, len(allowedOrigins))
	for i, origin := range allowedOrigins {
		origins[i] = strings.TrimSuffix(origin, "/")
	}
	return &codecHandler{
		// The UI shows histories as they are, plaintext payloads of other clients included.
		codec:          NewPayloadCodecWithOptions(ring, Options{AllowPlaintext: true}),
		authorize:      authorize,
		allowedOrigins: origins,
	}
}

func (h *codecHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	originAllowed := h.allowCORS(w, r)

	if r.Method == http.MethodOptions {
		if !originAllowed {
			writeProblem(w, http.StatusForbidden, "Origin not allowed",
				"this origin is not in the codec server's allowed origins")
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}

	if err := h.authorize(r); err != nil {
		if errors.Is(err, ErrCodecUnauthenticated) {
			writeProblem(w, http.StatusUnauthorized, "Unauthenticated", err.Error())
			return
		}
		writeProblem(w, http.StatusForbidden, "Forbidden", err.Error())
		return
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeProblem(w, http.StatusMethodNotAllowed, "Method not allowed", "the codec accepts POST only")
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/encode") && !strings.HasSuffix(r.URL.Path, "/decode") {
		writeProblem(w, http.StatusNotFound, "Not found", "codec paths end in /encode or /decode")
		return
	}

	h.convert(w, r)
}

// convert runs the codec over the request's payloads in the direction the path names.
func (h *codecHandler) convert(w http.ResponseWriter, r *http.Request) {
	request, bad := readPayloads(w, r)
	if bad != nil {
		bad.write(w)
		return
	}
	convert := h.codec.Decode
	if strings.HasSuffix(r.URL.Path, "/encode") {
		convert = h.codec.Encode
	}
	payloads, err := convert(request.GetPayloads())
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "Payloads could not be converted", err.Error())
		return
	}
	response, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "Response could not be encoded", err.Error())
		return
	}
	// Decoded payloads are plaintext secrets: keep them out of every cache.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(response)
}

func readPayloads(w http.ResponseWriter, r *http.Request) (*commonpb.Payloads, *problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCodecRequestBytes))
	if maxErr, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, &problem{Status: http.StatusRequestEntityTooLarge, Title: "Request too large",
			Detail: fmt.Sprintf("codec requests are limited to %d bytes", maxErr.Limit)}
	}
	if err != nil {
		return nil, &problem{Status: http.StatusBadRequest, Title: "Unreadable request", Detail: err.Error()}
	}
	var payloads commonpb.Payloads
	if err := protojson.Unmarshal(body, &payloads); err != nil {
		return nil, &problem{Status: http.StatusBadRequest, Title: "Malformed payloads",
			Detail: `want {"payloads": [...]} as protobuf JSON`}
	}
	return &payloads, nil
}

// allowCORS sets the CORS response headers when the request's origin is allowed. Credentials are
// allowed, so the origin is echoed rather than "*", which browsers reject with credentials.
func (h *codecHandler) allowCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(h.allowedOrigins, origin) {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	return true
}

// problem is an RFC 9457 problem details body.
type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	(&problem{Status: status, Title: title, Detail: detail}).write(w)
}

func (p *problem) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
