package apiserver

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/skypanel/skypanel/temporal/codec"

	"github.com/skypanel/skypanel/db"
)

// The Temporal Web UI decodes payloads by calling a remote codec from the admin's browser. It
// cannot send our bearer token, so an administrator signs in once on a small page here, which
// sets an HttpOnly cookie scoped to the codec's path; the UI then calls the codec with "include
// cross-origin credentials". API clients may send the bearer token instead.
const (
	codecPath         = "/api/paas/temporal-codec/"
	codecLoginPath    = codecPath + "login"
	codecCookie       = "skypanel_codec"
	codecCookieMaxAge = 8 * time.Hour
)

var errCodecForbidden = errors.New("the Temporal codec is for administrators")

func (s *Server) registerCodec() {
	s.mux.Handle(codecPath, codec.NewCodecHandler(s.cfg.Keyring, s.authorizeCodec, s.cfg.CodecOrigins))
	s.mux.HandleFunc("GET "+codecLoginPath, s.codecLoginPage)
	s.mux.HandleFunc("POST "+codecLoginPath, s.codecLogin)
}

// authorizeCodec admits administrators only, by bearer token or by the codec cookie.
func (s *Server) authorizeCodec(r *http.Request) error {
	token := ""
	if scheme, value, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		token = strings.TrimSpace(value)
	} else if c, err := r.Cookie(codecCookie); err == nil && c.Value != "" {
		// The sign-in's decode-only session: good for this endpoint and nothing else.
		role, err := s.store.CodecSessionRole(r.Context(), HashToken(c.Value))
		if errors.Is(err, db.ErrNotFound) {
			return fmt.Errorf("%w: the codec session has expired or its token was revoked: sign in again at %s", codec.ErrCodecUnauthenticated, codecLoginPath)
		}
		if err != nil {
			s.log.Error("authorize codec", "error", err)
			return fmt.Errorf("%w: cannot check the session now", codec.ErrCodecUnauthenticated)
		}
		if role != db.RoleAdmin {
			return errCodecForbidden
		}
		return nil
	}
	if token == "" {
		return fmt.Errorf("%w: send an administrator's bearer token, or sign in at %s", codec.ErrCodecUnauthenticated, codecLoginPath)
	}
	p, err := s.store.PrincipalByTokenHash(r.Context(), HashToken(token))
	if errors.Is(err, db.ErrNotFound) {
		return fmt.Errorf("%w: invalid or revoked token", codec.ErrCodecUnauthenticated)
	}
	if err != nil {
		s.log.Error("authorize codec", "error", err)
		return fmt.Errorf("%w: cannot check the token now", codec.ErrCodecUnauthenticated)
	}
	if p.Role != db.RoleAdmin {
		return errCodecForbidden
	}
	return nil
}

var codecLoginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SkyPanel: decode Temporal payloads</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5}input{width:100%;padding:.4rem}</style></head>
<body>
<h1>Decode Temporal payloads</h1>
{{if .Message}}<p><strong>{{.Message}}</strong></p>{{end}}
<p>SkyPanel encrypts every workflow input and result. To read them in the Temporal Web UI, sign in
here with an administrator's API token; your browser keeps it in a cookie only this codec endpoint
receives. Then, in the Temporal UI, open the <em>Data Encoder</em> settings and turn on
<em>include cross-origin credentials</em>. Open the UI on the same host name as this page.</p>
<form method="post" action="{{.Action}}">
<label>Administrator API token <input type="password" name="token" autocomplete="off" required></label>
<p><button type="submit">Sign in</button></p>
</form>
</body></html>
`))

func (s *Server) codecLoginPage(w http.ResponseWriter, r *http.Request) {
	s.renderCodecLogin(w, http.StatusOK, "")
}

func (s *Server) renderCodecLogin(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	codecLoginTemplate.Execute(w, struct{ Action, Message string }{codecLoginPath, message}) //nolint:errcheck
}

func (s *Server) codecLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		s.renderCodecLogin(w, http.StatusUnprocessableEntity, "Paste an administrator's API token.")
		return
	}
	p, err := s.store.PrincipalByTokenHash(r.Context(), HashToken(token))
	switch {
	case errors.Is(err, db.ErrNotFound):
		s.renderCodecLogin(w, http.StatusUnauthorized, "That token is invalid or revoked.")
		return
	case err != nil:
		s.log.Error("codec login", "error", err)
		s.renderCodecLogin(w, http.StatusServiceUnavailable, "The token cannot be checked now; try again.")
		return
	case p.Role != db.RoleAdmin:
		s.renderCodecLogin(w, http.StatusForbidden, "Only administrators may decode workflow payloads.")
		return
	}
	// The cookie carries a session of its own, never the admin's token: it decodes payloads
	// and nothing else, for 8 hours or until that token is revoked.
	session, hash, err := NewToken(codecSessionPrefix)
	if err == nil {
		err = s.store.CreateCodecSession(r.Context(), p.UserID, p.TokenID, hash, time.Now().Add(codecCookieMaxAge))
	}
	if err != nil {
		s.log.Error("codec login", "error", err)
		s.renderCodecLogin(w, http.StatusServiceUnavailable, "The session cannot be created now; try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: codecCookie, Value: session, Path: codecPath, MaxAge: int(codecCookieMaxAge / time.Second),
		HttpOnly: true, Secure: s.overTLS(r), SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("administrator signed in to the Temporal codec", "admin_user_id", p.UserID)
	s.renderCodecLogin(w, http.StatusOK, "Signed in. The Temporal UI can now decode payloads for 8 hours.")
}

// codecSessionPrefix marks a codec session's value.
const codecSessionPrefix = "spc_"

// overTLS tells whether the browser reached the API over TLS: directly, or through the
// platform's public https URL (a proxy that terminates TLS in front).
func (s *Server) overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(s.cfg.NodeInstall.PublicURL, "https://")
}
