package fakegithub

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// authorize is GitHub's authorization page with the user clicking "Authorize" at once: back to
// redirect_uri with a fresh single-use code and the state untouched.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != s.ClientID {
		http.NotFound(w, r)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		// GitHub would fall back to the app's registered callback; the fake has none.
		http.Error(w, "redirect_uri must be an absolute URL", http.StatusBadRequest)
		return
	}
	code := randomHex(10)
	s.mu.Lock()
	s.codes[code] = pendingCode{redirectURI: q.Get("redirect_uri"), scope: q.Get("scope")}
	s.mu.Unlock()

	back := redirect.Query()
	back.Set("code", code)
	if state := q.Get("state"); state != "" {
		back.Set("state", state)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// accessToken exchanges a code for a token. Like GitHub it answers failures with 200 and an
// "error" field, in JSON when asked (oauth2 asks) and form-encoded otherwise.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	clientID, clientSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id, secret, ok := r.BasicAuth(); ok {
		clientID, clientSecret = id, secret
	}
	if clientID != s.ClientID || clientSecret != s.ClientSecret {
		// GitHub says "incorrect_client_credentials" here; the brief (and most clients) treat any
		// error alike, and bad_verification_code is what a stale code gives too.
		writeTokenResponse(w, r, badCode)
		return
	}
	code := r.PostForm.Get("code")
	s.mu.Lock()
	pending, ok := s.codes[code]
	if ok {
		delete(s.codes, code) // single use, whatever comes next
	}
	s.mu.Unlock()
	if !ok {
		writeTokenResponse(w, r, badCode)
		return
	}
	if uri := r.PostForm.Get("redirect_uri"); uri != "" && uri != pending.redirectURI {
		writeTokenResponse(w, r, url.Values{
			"error":             {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."},
		})
		return
	}

	token := "gho_" + randomHex(18)
	s.mu.Lock()
	s.tokens[token] = false
	s.issued = append(s.issued, token)
	s.mu.Unlock()
	writeTokenResponse(w, r, url.Values{
		"access_token": {token},
		"token_type":   {"bearer"},
		"scope":        {grantedScope(pending.scope)},
	})
}

var badCode = url.Values{
	"error":             {"bad_verification_code"},
	"error_description": {"The code passed is incorrect or expired."},
	"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"},
}

// grantedScope is the requested scope list as GitHub reports it granted: comma-separated.
func grantedScope(requested string) string {
	return strings.Join(strings.FieldsFunc(requested, func(r rune) bool { return r == ' ' || r == ',' }), ",")
}

func writeTokenResponse(w http.ResponseWriter, r *http.Request, v url.Values) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		flat := map[string]string{}
		for k := range v {
			flat[k] = v.Get(k)
		}
		writeJSON(w, http.StatusOK, flat)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(v.Encode()))
}

// deleteGrant is DELETE /applications/{client_id}/grant: the app (basic auth with its client id
// and secret) revokes a user's authorization, which kills the named token and every other token
// of the grant. In the fake every token is the one user's grant of the one app.
func (s *Server) deleteGrant(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.ClientID || secret != s.ClientSecret || r.PathValue("client_id") != s.ClientID {
		badCredentials(w)
		return
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.AccessToken == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"message": "Invalid request: access_token is required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if revoked, issued := s.tokens[body.AccessToken]; !issued || revoked {
		notFound(w)
		return
	}
	s.tokens[body.AccessToken] = true
	s.revoked = append(s.revoked, body.AccessToken)
	for _, t := range s.issued {
		if !s.tokens[t] {
			s.tokens[t] = true
			s.revoked = append(s.revoked, t)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
