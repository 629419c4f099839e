package codec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/skypanel/skypanel/secrets"
)

const (
	codecBase = "/api/paas/temporal-codec"
	uiOrigin  = "http://localhost:8233"
)

// codecCaller lets each test say who is calling and count authorize calls.
type codecCaller struct {
	err   error
	calls int
}

func (c *codecCaller) authorize(*http.Request) error {
	c.calls++
	return c.err
}

func newTestCodecServer(t *testing.T, ring *secrets.Keyring, caller *codecCaller) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(codecBase+"/", NewCodecHandler(ring, caller.authorize, []string{"http://127.0.0.1:8233", uiOrigin + "/"}))
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	return server
}

func postCodec(t *testing.T, server *httptest.Server, path, origin, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, server.URL+codecBase+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Authorization", "Bearer test")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := server.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func payloadsJSON(t *testing.T, payloads ...*commonpb.Payload) string {
	t.Helper()
	body, err := protojson.Marshal(&commonpb.Payloads{Payloads: payloads})
	require.NoError(t, err)
	return string(body)
}

func readPayloadsResponse(t *testing.T, resp *http.Response) []*commonpb.Payload {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var payloads commonpb.Payloads
	require.NoError(t, protojson.Unmarshal(body, &payloads))
	return payloads.GetPayloads()
}

func readProblem(t *testing.T, resp *http.Response, status int) problem {
	t.Helper()
	require.Equal(t, status, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	var p problem
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.Equal(t, status, p.Status)
	require.NotEmpty(t, p.Title)
	return p
}

func TestCodecHandlerDecodesForAuthorizedCaller(t *testing.T) {
	ring := testKeyring(t, "k1")
	caller := &codecCaller{}
	server := newTestCodecServer(t, ring, caller)
	original, err := converter.GetDefaultDataConverter().ToPayload(deployInput{AppID: "app-1", Password: canary})
	require.NoError(t, err)
	encoded, err := NewPayloadCodec(ring).Encode([]*commonpb.Payload{original})
	require.NoError(t, err)

	resp := postCodec(t, server, "/decode", uiOrigin, payloadsJSON(t, encoded...))
	require.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	decoded := readPayloadsResponse(t, resp)
	require.Len(t, decoded, 1)
	require.True(t, proto.Equal(original, decoded[0]))
	require.Equal(t, 1, caller.calls)
}

func TestCodecHandlerEncodes(t *testing.T) {
	ring := testKeyring(t, "k1")
	server := newTestCodecServer(t, ring, &codecCaller{})
	original := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"` + canary + `"`)}

	encoded := readPayloadsResponse(t, postCodec(t, server, "/encode", "", payloadsJSON(t, original)))
	require.Len(t, encoded, 1)
	require.Equal(t, EncryptedPayloadEncoding, string(encoded[0].GetMetadata()["encoding"]))
	require.NotContains(t, string(encoded[0].GetData()), canary)

	decoded, err := NewPayloadCodec(ring).Decode(encoded)
	require.NoError(t, err)
	require.True(t, proto.Equal(original, decoded[0]))
}

func TestCodecHandlerRejectsUnauthenticatedAndForbidden(t *testing.T) {
	ring := testKeyring(t, "k1")
	encoded, err := NewPayloadCodec(ring).Encode([]*commonpb.Payload{{Data: []byte(canary)}})
	require.NoError(t, err)
	body := payloadsJSON(t, encoded...)

	caller := &codecCaller{err: fmt.Errorf("%w: no session cookie", ErrCodecUnauthenticated)}
	resp := postCodec(t, newTestCodecServer(t, ring, caller), "/decode", uiOrigin, body)
	p := readProblem(t, resp, http.StatusUnauthorized)
	require.Contains(t, p.Detail, "no session cookie")
	require.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"), "the UI must be able to read the error")

	caller = &codecCaller{err: errors.New("user is not an admin")}
	resp = postCodec(t, newTestCodecServer(t, ring, caller), "/decode", uiOrigin, body)
	p = readProblem(t, resp, http.StatusForbidden)
	require.Contains(t, p.Detail, "not an admin")
	require.Equal(t, 1, caller.calls)
}

func TestCodecHandlerPreflight(t *testing.T) {
	caller := &codecCaller{err: ErrCodecUnauthenticated}
	server := newTestCodecServer(t, testKeyring(t, "k1"), caller)
	preflight := func(origin string) *http.Response {
		req, err := http.NewRequest(http.MethodOptions, server.URL+codecBase+"/decode", nil)
		require.NoError(t, err)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-namespace")
		resp, err := server.Client().Do(req)
		require.NoError(t, err)
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	resp := preflight(uiOrigin)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, uiOrigin, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	for _, header := range []string{"Authorization", "Content-Type", "X-Namespace"} {
		require.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), header)
	}

	resp = preflight("https://evil.example")
	require.NotEqual(t, http.StatusNoContent, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))
	require.Zero(t, caller.calls, "preflights carry no credentials and must not be authorized")
}

func TestCodecHandlerGivesNoCORSToOtherOrigins(t *testing.T) {
	ring := testKeyring(t, "k1")
	server := newTestCodecServer(t, ring, &codecCaller{})
	resp := postCodec(t, server, "/encode", "https://evil.example", payloadsJSON(t, &commonpb.Payload{Data: []byte("x")}))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Contains(t, resp.Header.Values("Vary"), "Origin")
}

func TestCodecHandlerBadRequests(t *testing.T) {
	ring := testKeyring(t, "k1")
	server := newTestCodecServer(t, ring, &codecCaller{})

	readProblem(t, postCodec(t, server, "/decode", "", `{"payloads": 7}`), http.StatusBadRequest)
	readProblem(t, postCodec(t, server, "/other", "", `{}`), http.StatusNotFound)

	huge := `{"payloads":[{"data":"` + strings.Repeat("A", maxCodecRequestBytes) + `"}]}`
	readProblem(t, postCodec(t, server, "/encode", "", huge), http.StatusRequestEntityTooLarge)

	encoded, err := NewPayloadCodec(ring).Encode([]*commonpb.Payload{{Data: []byte(canary)}})
	require.NoError(t, err)
	encoded[0].Data[len(encoded[0].Data)-1] ^= 0x01
	p := readProblem(t, postCodec(t, server, "/decode", "", payloadsJSON(t, encoded...)), http.StatusBadRequest)
	require.Contains(t, p.Detail, "ciphertext was modified")
	require.NotContains(t, p.Detail, canary)

	resp, err := server.Client().Get(server.URL + codecBase + "/decode")
	require.NoError(t, err)
	defer resp.Body.Close()
	readProblem(t, resp, http.StatusMethodNotAllowed)
}
