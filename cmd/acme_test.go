package cmd_test

// ACME against a real ACME server: Pebble (Let's Encrypt's test CA), run in
// this process from its packages, validating challenges over loopback.

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/auroradev/aurora/app/apptest"
	"github.com/auroradev/aurora/config"
)

// acmeDomain is the name the test CA issues for: .test is reserved (RFC
// 2606), and the test's DNS server resolves it to 127.0.0.1.
const acmeDomain = "chat.aurora.test"

// testACME is a running Pebble: its directory URL and the root its
// certificates chain to.
type testACME struct {
	DirectoryURL    string
	DirectoryCAFile string         // the roots of the directory's HTTPS
	Roots           *x509.CertPool // what issued certificates chain to
	logs            *apptest.Buffer
}

// startPebble runs Pebble's CA, VA and ACME front end on loopback. Its VA
// resolves every name through a DNS server of the test (127.0.0.1 for any
// A query) and validates HTTP-01 on httpPort and TLS-ALPN-01 on tlsPort of
// that address, as a public CA does on 80 and 443.
func startPebble(t *testing.T, httpPort, tlsPort int) *testACME {
	t.Helper()
	// Pebble's own defaults are for hardening clients: a random sleep of
	// up to 5 s before each validation, 5% of nonces refused. Off, so the
	// test waits on validation itself (autocert retries bad nonces anyway).
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logs := &apptest.Buffer{}
	logger := log.New(logs, "pebble ", log.Lmicroseconds)
	if testing.Verbose() {
		logger.SetOutput(io.MultiWriter(logs, os.Stderr))
	}
	resolver := startDNS(t)

	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	validator := va.New(logger, httpPort, tlsPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// ACME is HTTPS only (Pebble checks every request's URL is https), so
	// the directory has a certificate of its own, from a CA aurora is
	// told to trust (http.tls.acme.directory_ca_file).
	apiCA := apptest.NewTestCA(t, time.Hour, "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(apiCA.CertFile, apiCA.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: front.Handler(), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })

	roots := x509.NewCertPool()
	roots.AddCert(authority.GetRootCert(0).Cert)
	return &testACME{DirectoryURL: "https://" + ln.Addr().String() + wfe.DirectoryPath, DirectoryCAFile: apiCA.CAFile,
		Roots: roots, logs: logs}
}

// startDNS serves DNS over TCP (Pebble's VA asks over TCP) on loopback:
// every A query is answered 127.0.0.1, every other query with no records.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// freePorts reserves n loopback ports for aurora's listeners. Pebble's VA
// takes the ports it validates on when it is built, before aurora binds;
// they are free again when this returns, so a clash shows as a failed
// bind, not a wrong answer.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// acmeConfig is a test server whose certificate comes from the Pebble at
// directory, for acmeDomain, listening on port.
func acmeConfig(t *testing.T, pebble *testACME, port int) *config.Config {
	cfg := apptest.Config(t)
	cfg.HTTP.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg.HTTP.TLS.ACME.Domains = []string{acmeDomain}
	cfg.HTTP.TLS.ACME.Email = "ops@aurora.test"
	cfg.HTTP.TLS.ACME.DirectoryURL = pebble.DirectoryURL
	cfg.HTTP.TLS.ACME.DirectoryCAFile = pebble.DirectoryCAFile
	return cfg
}

// checkIssued checks the certificate aurora serves is Pebble's for
// acmeDomain, and that the ACME cache dir kept it, private.
func checkIssued(t *testing.T, s *apptest.Server, cfg *config.Config) {
	t.Helper()
	resp, err := s.Client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname(acmeDomain); err != nil || len(resp.TLS.VerifiedChains) == 0 {
		t.Fatalf("served certificate %v (verified chains %d): %v", leaf.DNSNames, len(resp.TLS.VerifiedChains), err)
	}
	dir := cfg.ACMECacheDir()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o700 {
		t.Errorf("ACME cache dir %s is mode %#o, want 0700", dir, m)
	}
	if _, err := os.Stat(filepath.Join(dir, acmeDomain)); err != nil {
		t.Errorf("certificate not cached: %v", err)
	}
}

// TestACMETLSALPN: with no redirect listener, aurora proves the domain with
// TLS-ALPN-01 on its HTTPS listener, and serves the issued certificate to
// an HTTPS request and a wss connection that trust only Pebble's root.
func TestACMETLSALPN(t *testing.T) {
	ports := freePorts(t, 2)
	// HTTP-01 would go to a port nothing listens on: only TLS-ALPN-01 can pass.
	pebble := startPebble(t, ports[1], ports[0])
	cfg := acmeConfig(t, pebble, ports[0])
	// The first TLS handshake (StartTLS's readiness probe) obtains it.
	s := apptest.StartTLS(t, cfg, pebble.Roots, acmeDomain)
	checkIssued(t, s, cfg)
	tlsChat(t, s)

	// A handshake for a name not in http.tls.acme.domains gets no
	// certificate (and asks the CA for none).
	other := apptest.TLSClient(pebble.Roots, s.App.Addr())
	if resp, err := other.Get("https://other.aurora.test/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("a handshake for a name outside acme.domains succeeded")
	}

	// The certificate survives a restart in the cache: the next server
	// asks the CA for nothing.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	orders := strings.Count(pebble.logs.String(), "Issued certificate")
	s2 := apptest.StartTLS(t, cfg, pebble.Roots, acmeDomain)
	checkIssued(t, s2, cfg)
	if n := strings.Count(pebble.logs.String(), "Issued certificate"); n != orders {
		t.Errorf("restart issued %d more certificates, want the cached one", n-orders)
	}
}

// TestACMEHTTP01OnRedirectListener: with the redirect listener on, HTTP-01
// challenges are answered there (not redirected) while every other request
// gets its 308. Pebble's TLS-ALPN-01 goes to a port nothing listens on, so
// only HTTP-01 can pass.
func TestACMEHTTP01OnRedirectListener(t *testing.T) {
	ports := freePorts(t, 3)
	pebble := startPebble(t, ports[1], ports[2])
	cfg := acmeConfig(t, pebble, ports[0])
	cfg.HTTP.RedirectAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	s := apptest.StartTLS(t, cfg, pebble.Roots, acmeDomain)
	checkIssued(t, s, cfg)
	tlsChat(t, s)
	logs := pebble.logs.String()
	if !strings.Contains(logs, "Attempting to validate w/ HTTP: http://"+acmeDomain) {
		t.Errorf("Pebble did not validate over http-01:\n%s", logs)
	}

	plain := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// get returns the status and Location of GET path.
	get := func(path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+s.App.RedirectAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = acmeDomain // as a client on port 80 sends it
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	if code, loc := get("/rooms?x=1"); code != http.StatusPermanentRedirect || loc != "https://"+acmeDomain+"/rooms?x=1" {
		t.Errorf("GET /rooms?x=1: %d %q, want 308 to https://%s/rooms?x=1", code, loc, acmeDomain)
	}
	// An unknown challenge token is the challenge handler's to answer
	// (404), not redirected.
	if code, loc := get("/.well-known/acme-challenge/unknown-token"); code != http.StatusNotFound {
		t.Errorf("unknown ACME challenge: %d %q, want the challenge handler's 404", code, loc)
	}
}
