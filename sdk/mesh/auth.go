package mesh

import (
	"errors"
	"flag"
	"fmt"
	"os"
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
	// Creds is a credentials file (JWT and nkey seed) for decentralised
	// auth.
	Creds string
	// NKey is a file with an nkey seed.
	NKey string
	// TLSCA trusts this CA for the server's certificate; TLSCert and TLSKey
	// present a client certificate.
	TLSCA, TLSCert, TLSKey string
}

// RegisterFlags adds the auth flags to fs.
func (a *Auth) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&a.User, "nats_user", a.User, "NATS user name")
	fs.StringVar(&a.Password, "nats_password", "", "NATS password (prefer BOTMESH_NATS_PASSWORD or --nats_password_file)")
	fs.StringVar(&a.PasswordFile, "nats_password_file", a.PasswordFile, "file holding the NATS password")
	fs.StringVar(&a.Token, "nats_token", "", "NATS token (prefer BOTMESH_NATS_TOKEN or --nats_token_file)")
	fs.StringVar(&a.TokenFile, "nats_token_file", a.TokenFile, "file holding the NATS token")
	fs.StringVar(&a.Creds, "nats_creds", a.Creds, "NATS credentials file (JWT and nkey seed)")
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
		if _, err := os.Stat(a.Creds); err != nil {
			return nil, fmt.Errorf("NATS credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.Creds))
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
	return opts, nil
}

func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
