package natsconn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// Auth says how a process proves itself to NATS, and whether it speaks TLS.
// At most one of the credential kinds may be set. Secrets come from flags,
// BOTMESH_* variables or files, and never reach a log or an error.
type Auth struct {
	// User and Password (or PasswordFile) for user/password auth.
	User         string
	Password     string
	PasswordFile string
	// Token (or TokenFile) for token auth.
	Token     string
	TokenFile string
	// Creds is a credentials file: a NATS one (JWT and nkey seed) for
	// decentralised auth, or a botmesh one (see CredsFile) with a user, a
	// password and, when the server speaks TLS, the CA that signed its
	// certificate.
	Creds string
	// NKey is a file with an nkey seed.
	NKey string
	// TLSCA trusts this CA for the server's certificate; TLSCert and TLSKey
	// present a client certificate.
	TLSCA, TLSCert, TLSKey string

	// requireTLS is set for a server found on the LAN whose certificate
	// verified: every connection to it must speak TLS, the go-micro
	// plugins' too.
	requireTLS bool
}

// RegisterFlags adds the auth flags to fs.
func (a *Auth) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.User, "nats_user", a.User, "NATS user name")
	fs.StringVar(&a.Password, "nats_password", "", "NATS password (prefer BOTMESH_NATS_PASSWORD or --nats_password_file)")
	fs.StringVar(&a.PasswordFile, "nats_password_file", a.PasswordFile, "file holding the NATS password")
	fs.StringVar(&a.Token, "nats_token", "", "NATS token (prefer BOTMESH_NATS_TOKEN or --nats_token_file)")
	fs.StringVar(&a.TokenFile, "nats_token_file", a.TokenFile, "file holding the NATS token")
	fs.StringVar(&a.Creds, "nats_creds", a.Creds, "NATS credentials file: a NATS .creds file (JWT and nkey seed) or the one botmesh (the all-in-one) writes")
	fs.StringVar(&a.NKey, "nats_nkey", a.NKey, "file holding a NATS nkey seed")
	fs.StringVar(&a.TLSCA, "nats_tls_ca", a.TLSCA, "CA certificate (PEM) to trust for the NATS server; turns TLS on")
	fs.StringVar(&a.TLSCert, "nats_tls_cert", a.TLSCert, "client certificate (PEM) for NATS TLS")
	fs.StringVar(&a.TLSKey, "nats_tls_key", a.TLSKey, "client key (PEM) for NATS TLS")
}

// Validate reports a combination that cannot work.
func (a Auth) Validate() error {
	kinds := 0
	for _, set := range []bool{a.User != "" || a.Password != "" || a.PasswordFile != "", a.Token != "" || a.TokenFile != "", a.Creds != "", a.NKey != ""} {
		if set {
			kinds++
		}
	}
	var errs []error
	if kinds > 1 {
		errs = append(errs, errors.New("NATS auth: give one of user/password, token, creds or nkey"))
	}
	if (a.Password != "" || a.PasswordFile != "") && a.User == "" {
		errs = append(errs, errors.New("NATS auth: a password needs --nats_user"))
	}
	if a.Password != "" && a.PasswordFile != "" || a.Token != "" && a.TokenFile != "" {
		errs = append(errs, errors.New("NATS auth: give a secret or its file, not both"))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		errs = append(errs, errors.New("NATS TLS: --nats_tls_cert and --nats_tls_key go together"))
	}
	return errors.Join(errs...)
}

// options turns a into nats.go options. Files are read here, so a missing
// one is reported at start.
func (a Auth) options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.User != "" {
		pw := a.Password
		if a.PasswordFile != "" {
			b, err := readSecret(a.PasswordFile)
			if err != nil {
				return nil, err
			}
			pw = b
		}
		opts = append(opts, nats.UserInfo(a.User, pw))
	}
	if a.Token != "" || a.TokenFile != "" {
		tok := a.Token
		if a.TokenFile != "" {
			b, err := readSecret(a.TokenFile)
			if err != nil {
				return nil, err
			}
			tok = b
		}
		opts = append(opts, nats.Token(tok))
	}
	if a.Creds != "" {
		b, err := os.ReadFile(a.Creds)
		if err != nil {
			return nil, fmt.Errorf("NATS credentials file: %w", err)
		}
		if isNATSCreds(b) {
			opts = append(opts, nats.UserCredentials(a.Creds))
		} else {
			cf, err := parseCredsFile(b)
			if err != nil {
				return nil, fmt.Errorf("NATS credentials file %s: %w", a.Creds, err)
			}
			opts = append(opts, nats.UserInfo(cf.User, cf.Password))
			if len(cf.CA) > 0 && a.TLSCA == "" {
				pool, err := certPool(cf.CA)
				if err != nil {
					return nil, fmt.Errorf("NATS credentials file %s: %w", a.Creds, err)
				}
				opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}))
			}
		}
	}
	if a.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKey)
		if err != nil {
			return nil, fmt.Errorf("NATS nkey seed file %s: %w", a.NKey, err)
		}
		opts = append(opts, o)
	}
	if a.TLSCA != "" {
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if a.TLSCert != "" {
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	if a.requireTLS {
		opts = append(opts, func(o *nats.Options) error {
			o.Secure = true
			if o.TLSConfig == nil {
				o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			return nil
		})
	}
	return opts, nil
}

// HasCredentials reports whether a holds a secret that proves who the
// process is (a user or password, a token, a credentials file or an nkey):
// one to keep from servers that have not proved who they are.
func (a Auth) HasCredentials() bool {
	return a.User != "" || a.Password != "" || a.PasswordFile != "" || a.Token != "" || a.TokenFile != "" || a.Creds != "" || a.NKey != ""
}

// tlsConfig returns the TLS settings a connection with a would use: the
// CA of --nats_tls_ca, else the one in a botmesh credentials file, else
// the system's roots; and the client certificate, if any. Certificates
// are always verified.
func (a Auth) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case a.TLSCA != "":
		b, err := os.ReadFile(a.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("NATS TLS CA: %w", err)
		}
		if tc.RootCAs, err = certPool(b); err != nil {
			return nil, fmt.Errorf("NATS TLS CA %s: %w", a.TLSCA, err)
		}
	case a.Creds != "":
		b, err := os.ReadFile(a.Creds)
		if err != nil {
			return nil, fmt.Errorf("NATS credentials file: %w", err)
		}
		if !isNATSCreds(b) {
			cf, err := parseCredsFile(b)
			if err != nil {
				return nil, fmt.Errorf("NATS credentials file %s: %w", a.Creds, err)
			}
			if len(cf.CA) > 0 {
				if tc.RootCAs, err = certPool(cf.CA); err != nil {
					return nil, fmt.Errorf("NATS credentials file %s: %w", a.Creds, err)
				}
			}
		}
	}
	if a.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("NATS TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// CredsFile is what a botmesh credentials file holds: the all-in-one
// writes one at start for botctl and for parts on other hosts, and
// --nats_creds reads it. The file is text, one "key: value" a line, then
// the CA's certificate in PEM when the server speaks TLS:
//
//	# comment
//	url: nats://127.0.0.1:4222
//	user: admin
//	password: …
//	-----BEGIN CERTIFICATE-----
//	…
type CredsFile struct {
	// URL is where the server is reached from the host that wrote the
	// file.
	URL string
	// User and Password authenticate.
	User, Password string
	// CA is the certificate (PEM) that signed the server's, when it
	// speaks TLS.
	CA []byte
}

// credsFileName is the name of the all-in-one's credentials file in its
// directory.
const credsFileName = "allinone.creds"

// DefaultCredsFile returns where the all-in-one writes its credentials and
// botctl looks for them: botmesh/allinone.creds in the user's
// configuration directory ($XDG_CONFIG_HOME, else ~/.config, on Linux).
func DefaultCredsFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no directory for the credentials file: %w", err)
	}
	return filepath.Join(dir, "botmesh", credsFileName), nil
}

// GeneratePassword returns a random password: 32 bytes from crypto/rand
// as 52 base-32 characters (letters and digits, safe in a URL).
func GeneratePassword() string {
	return strings.ToLower(rand.Text() + rand.Text())
}

// ReadCredsFile reads a botmesh credentials file.
func ReadCredsFile(path string) (CredsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return CredsFile{}, fmt.Errorf("credentials file: %w", err)
	}
	cf, err := parseCredsFile(b)
	if err != nil {
		return CredsFile{}, fmt.Errorf("credentials file %s: %w", path, err)
	}
	return cf, nil
}

// WriteCredsFile writes c to path so that only the user can read it: its
// directory is made with mode 0700 if missing, and the file, mode 0600,
// replaces any old one in one rename (a symbolic link at path is replaced,
// not followed).
func WriteCredsFile(path string, c CredsFile) error {
	if c.User == "" || c.Password == "" || strings.ContainsAny(c.URL+c.User+c.Password, "\r\n") {
		return errors.New("credentials file: user and password must be set, on one line each")
	}
	var b bytes.Buffer
	b.WriteString("# botmesh NATS credentials, written by botmesh (the all-in-one) at start.\n")
	b.WriteString("# Whoever reads this file can use the mesh as its admin: keep it private.\n")
	b.WriteString("# botctl reads it by default; other parts: --nats_creds " + path + "\n")
	fmt.Fprintf(&b, "url: %s\nuser: %s\npassword: %s\n", c.URL, c.User, c.Password)
	b.Write(c.CA)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("credentials file: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("credentials file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("credentials file: %w", err)
	}
	return nil
}

// isNATSCreds reports whether b is a NATS credentials file (a user JWT).
func isNATSCreds(b []byte) bool {
	return bytes.Contains(b, []byte("-----BEGIN NATS USER JWT-----"))
}

// parseCredsFile reads the text of a botmesh credentials file. Errors
// never quote the file's lines: they hold a password.
func parseCredsFile(b []byte) (CredsFile, error) {
	var cf CredsFile
	sc := bufio.NewScanner(bytes.NewReader(b))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "-----BEGIN ") {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return cf, fmt.Errorf("line %d is not \"key: value\"", n)
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "url":
			cf.URL = v
		case "user":
			cf.User = v
		case "password":
			cf.Password = v
		}
	}
	if cf.User == "" || cf.Password == "" {
		return cf, errors.New("not a credentials file: it needs a user and a password (or a NATS user JWT)")
	}
	if i := bytes.Index(b, []byte("-----BEGIN CERTIFICATE-----")); i >= 0 {
		cf.CA = b[i:]
		if _, err := certPool(cf.CA); err != nil {
			return cf, err
		}
	}
	return cf, nil
}

// certPool returns a pool of the PEM certificates in b.
func certPool(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}

func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
