package tokenauth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auroradev/aurora/app/token"
	"github.com/auroradev/aurora/app/tokenauth"
)

func request(target string, hdr map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

func TestToken(t *testing.T) {
	all := tokenauth.Bearer | tokenauth.Subprotocol | tokenauth.Query
	for _, c := range []struct {
		name   string
		target string
		hdr    map[string]string
		from   tokenauth.Source
		want   string // "" for none
	}{
		{"bearer", "/", map[string]string{"Authorization": "Bearer abc"}, tokenauth.Bearer, "abc"},
		{"bearer scheme in any case", "/", map[string]string{"Authorization": "bEaReR abc"}, tokenauth.Bearer, "abc"},
		{"basic is no bearer", "/", map[string]string{"Authorization": "Basic abc"}, tokenauth.Bearer, ""},
		{"no scheme", "/", map[string]string{"Authorization": "abc"}, tokenauth.Bearer, ""},
		{"empty bearer", "/", map[string]string{"Authorization": "Bearer  "}, tokenauth.Bearer, ""},
		{"query not accepted", "/?token=abc", nil, tokenauth.Bearer, ""},
		{"subprotocol not accepted", "/", map[string]string{"Sec-WebSocket-Protocol": "aurora.v1, aurora.bearer.abc"}, tokenauth.Bearer, ""},
		{"query", "/?token=abc", nil, all, "abc"},
		{"subprotocol", "/", map[string]string{"Sec-WebSocket-Protocol": "aurora.v1, aurora.bearer.abc"}, all, "abc"},
		{"bearer first", "/?token=q", map[string]string{"Authorization": "Bearer b", "Sec-WebSocket-Protocol": "aurora.bearer.s"}, all, "b"},
		{"subprotocol before query", "/?token=q", map[string]string{"Sec-WebSocket-Protocol": "aurora.bearer.s"}, all, "s"},
		{"a bad header falls through", "/?token=q", map[string]string{"Authorization": "Basic x"}, all, "q"},
		{"an empty subprotocol token is the answer", "/?token=q", map[string]string{"Sec-WebSocket-Protocol": "aurora.bearer."}, all, ""},
		{"none", "/", nil, all, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := tokenauth.Token(request(c.target, c.hdr), c.from)
			if got != c.want || ok != (c.want != "") {
				t.Errorf("Token = %q, %v; want %q", got, ok, c.want)
			}
		})
	}
}

func TestVerifyAndUnauthorized(t *testing.T) {
	tokens := token.NewIssuer([]byte("a-secret-of-enough-length-0123456789"), time.Hour)
	good, _, err := tokens.Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := token.NewIssuer([]byte("a-secret-of-enough-length-0123456789"), -time.Hour).Issue("u1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	const (
		plain   = `Bearer realm="aurora"`
		refused = `Bearer realm="aurora", error="invalid_token"`
	)
	for _, c := range []struct {
		name      string
		target    string
		from      tokenauth.Source
		body      string
		challenge string
	}{
		{"missing bearer", "/", tokenauth.Bearer, `{"error":"missing bearer token"}`, plain},
		{"missing any", "/", tokenauth.Bearer | tokenauth.Query, `{"error":"missing token"}`, plain},
		{"garbage", "/?token=nope", tokenauth.Query, `{"error":"invalid token"}`, refused},
		{"expired", "/?token=" + expired, tokenauth.Query, `{"error":"token expired"}`, refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tokenauth.Verify(request(c.target, nil), tokens, c.from)
			if err == nil {
				t.Fatal("Verify accepted it")
			}
			if !errors.Is(err, token.ErrInvalid) && !errors.Is(err, token.ErrExpired) {
				t.Errorf("err %v is neither ErrInvalid nor ErrExpired", err)
			}
			w := httptest.NewRecorder()
			tokenauth.Unauthorized(w, err)
			if w.Code != http.StatusUnauthorized || w.Body.String() != c.body+"\n" {
				t.Errorf("answer %d %q, want 401 %s", w.Code, w.Body.String(), c.body)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
		})
	}
	c, err := tokenauth.Verify(request("/?token="+good, nil), tokens, tokenauth.Query)
	if err != nil || c.UserID != "u1" || c.Username != "alice" {
		t.Errorf("Verify of a good token = %+v, %v", c, err)
	}
	if _, err := tokenauth.Verify(request("/", nil), tokens, tokenauth.Bearer); !errors.Is(err, tokenauth.ErrMissing) {
		t.Errorf("no token: %v, want ErrMissing", err)
	}
}
