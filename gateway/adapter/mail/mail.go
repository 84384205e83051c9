// Package mail is the gateway's mail output: an input that takes no
// messages and whose Send mails what the bot posts to the platform "mail"
// (the router's `mail ADDRESS COMMAND`), the conversation being the
// recipient's address.
//
// The router stores each mail as a message of the durable outbound path
// (sdk/durable/outbound.go) in the reply stream BOTMESH_OUT_mail; every
// mail gateway reads the platform's one outbound consumer. Send returns
// only once the SMTP server accepted the message, and an error that
// wraps adapter.ErrNotPosted while it cannot reach it (or it answers a
// temporary 4xx): the gateway then offers the message again after a pause
// instead of acknowledging it, so a mail server that is down for a while
// loses nothing (the stream keeps a message durable.ReplyMaxAge). A
// permanent refusal (5xx: no such mailbox) is logged and dropped.
//
// The SMTP URL, with its password, stays in the gateway: routers never see
// it, and it is never logged.
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	chatopsv1 "github.com/botmesh/botmesh/proto/chatops/v1"
	"github.com/botmesh/botmesh/sdk/secret"
	gomail "github.com/wneessen/go-mail"
)

// Name is the output's name in --inputs and the platform of its events.
const Name = "mail"

// MetaSubject is the meta key of the mail's subject; without it the
// subject is DefaultSubject. The router sets it ("botmesh: health
// greeter").
const MetaSubject = "mail.subject"

// DefaultSubject is the subject of a mail whose event has none.
const DefaultSubject = "botmesh"

// Config is the mail output's configuration: --smtp_url, --smtp_from,
// --smtp_ca (BOTMESH_SMTP_URL, BOTMESH_SMTP_FROM, BOTMESH_SMTP_CA).
type Config struct {
	// URL is the SMTP server: smtp://[USER:PASSWORD@]HOST[:PORT] (port 25
	// by default; STARTTLS when the server offers it) or
	// smtps://[USER:PASSWORD@]HOST[:PORT] (TLS from the start, port 465
	// by default). With a user and password the output authenticates,
	// choosing the best mechanism the server offers.
	URL secret.Value
	// From is the sender's address ("botmesh <bot@example.com>").
	From string
	// CA is a PEM file of the certificate authorities that sign the
	// server's certificate, when the system's do not (a private CA).
	CA string
	// Timeout bounds one delivery: connecting, and the whole SMTP
	// conversation.
	Timeout time.Duration
}

// Input is the mail output. Build it with New, or NewWith.
type Input struct {
	cfg Config
	log *slog.Logger

	// Taken from cfg by Init.
	host     string
	port     int
	ssl      bool
	user     string
	password secret.Value
	from     string
	tls      *tls.Config

	mu     sync.Mutex
	closed bool
}

var (
	_ adapter.Configurable = (*Input)(nil)
	_ adapter.Shared       = (*Input)(nil)
)

// New returns an unconfigured mail output, for the gateway's registry.
func New() adapter.Configurable { return &Input{cfg: Config{Timeout: 20 * time.Second}} }

// NewWith returns a mail output configured with cfg (checked as Init
// checks the flags), logging to log.
func NewWith(cfg Config, log *slog.Logger) (*Input, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	in := &Input{cfg: cfg}
	if err := in.Init(adapter.Env{Log: log}); err != nil {
		return nil, err
	}
	return in, nil
}

// String implements adapter.Input.
func (in *Input) String() string { return Name }

// SharedConversations implements adapter.Shared: any mail gateway can
// mail any address.
func (in *Input) SharedConversations() bool { return true }

// Flags implements adapter.Configurable. The flags are named for SMTP, as
// the variables the issue gave them (BOTMESH_SMTP_URL, BOTMESH_SMTP_FROM).
func (in *Input) Flags(fs *flag.FlagSet) {
	fs.Var(&in.cfg.URL, "smtp_url", "mail output: SMTP server, smtp://[user:password@]host[:port] (STARTTLS when offered; port 25) or smtps://... (TLS; port 465)")
	fs.StringVar(&in.cfg.From, "smtp_from", in.cfg.From, "mail output: the sender's address, e.g. 'botmesh <bot@example.com>'")
	fs.StringVar(&in.cfg.CA, "smtp_ca", in.cfg.CA, "mail output: PEM file of the CAs that sign the SMTP server's certificate (default: the system's)")
	fs.DurationVar(&in.cfg.Timeout, "smtp_timeout", in.cfg.Timeout, "mail output: longest time one delivery to the SMTP server may take")
}

// usage is the form of --smtp_url, for errors.
const usage = "smtp://[user:password@]host[:port] or smtps://[user:password@]host[:port]"

// Init implements adapter.Configurable: it checks the configuration. Its
// errors never quote the URL (it may hold a password).
func (in *Input) Init(env adapter.Env) error {
	in.log = env.Log
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	raw := strings.TrimSpace(in.cfg.URL.Reveal())
	if raw == "" {
		return errors.New("mail: set --smtp_url (BOTMESH_SMTP_URL) to the SMTP server, " + usage)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("mail: --smtp_url is not a URL of the form " + usage)
	}
	switch u.Scheme {
	case "smtp":
		in.port = 25
	case "smtps":
		in.port, in.ssl = 465, true
	default:
		return fmt.Errorf("mail: --smtp_url must start with smtp:// or smtps://, not %q", u.Scheme+"://")
	}
	in.host = u.Hostname()
	if in.host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("mail: --smtp_url must be " + usage + ", with nothing after the port")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("mail: --smtp_url has port %q: give a number from 1 to 65535", p)
		}
		in.port = n
	}
	if u.User != nil {
		in.user = u.User.Username()
		pw, _ := u.User.Password()
		in.password = secret.Value(pw)
	}
	in.from = strings.TrimSpace(in.cfg.From)
	if in.from == "" {
		return errors.New("mail: set --smtp_from (BOTMESH_SMTP_FROM) to the sender's address, e.g. 'botmesh <bot@example.com>'")
	}
	if _, err := ParseAddress(in.from); err != nil {
		return fmt.Errorf("mail: --smtp_from (BOTMESH_SMTP_FROM): %w", err)
	}
	in.tls = &tls.Config{ServerName: in.host, MinVersion: tls.VersionTLS12}
	if in.cfg.CA != "" {
		pem, err := os.ReadFile(in.cfg.CA)
		if err != nil {
			return fmt.Errorf("mail: --smtp_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("mail: --smtp_ca %s holds no PEM certificate", in.cfg.CA)
		}
		in.tls.RootCAs = pool
	}
	return nil
}

// Run implements adapter.Input: the output takes no messages; it waits
// for ctx.
func (in *Input) Run(ctx context.Context, _ adapter.Emit) error {
	in.log.Info("mail output ready", "smtp", net.JoinHostPort(in.host, strconv.Itoa(in.port)), "tls", in.ssl, "auth", in.user != "")
	<-ctx.Done()
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	return nil
}

// Send implements adapter.Conn: it mails ev's text to ev.To, with the
// subject in its MetaSubject, and returns once the SMTP server accepted
// it. While the server cannot be reached, or answers with a temporary
// error, the error wraps adapter.ErrNotPosted.
func (in *Input) Send(ctx context.Context, ev *chatopsv1.Event) error {
	in.mu.Lock()
	closed := in.closed
	in.mu.Unlock()
	if closed {
		return adapter.ErrClosed
	}
	to, err := ParseAddress(ev.GetTo())
	if err != nil {
		return fmt.Errorf("mail: not mailed: %w", err)
	}
	m, err := in.message(to, ev)
	if err != nil {
		return fmt.Errorf("mail: not mailed to %s: %w", to, err)
	}
	c, err := in.client()
	if err != nil {
		return fmt.Errorf("mail: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, in.cfg.Timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		if permanent(err) {
			return fmt.Errorf("mail: the SMTP server refused the mail to %s: %w", to, err)
		}
		return fmt.Errorf("mail: to %s: %w: %w", to, adapter.ErrNotPosted, err)
	}
	in.log.Debug("mailed", "to", to, "event", ev.GetInReplyTo(), "bytes", len(ev.GetData()))
	return nil
}

// message builds the mail of ev to the address to.
func (in *Input) message(to string, ev *chatopsv1.Event) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithCharset(gomail.CharsetUTF8), gomail.WithEncoding(gomail.EncodingQP))
	if err := m.From(in.from); err != nil {
		return nil, err
	}
	if err := m.To(to); err != nil {
		return nil, err
	}
	subject := strings.TrimSpace(ev.GetMeta()[MetaSubject])
	if subject == "" {
		subject = DefaultSubject
	}
	m.Subject(strings.Map(noControl, subject))
	// The same event gives the same Message-ID: a mail sent again after
	// the server's answer was lost can be told a copy.
	if id := ev.GetId(); id != "" && chatopsv1.ValidToken(id) {
		m.SetMessageIDWithValue(id + "@botmesh")
	} else {
		m.SetMessageID()
	}
	m.SetDate()
	m.SetBodyString(gomail.TypeTextPlain, string(ev.GetData()))
	return m, nil
}

// noControl drops control characters from a header (a subject with a
// line break would start a header of its own).
func noControl(r rune) rune {
	if r < 0x20 || r == 0x7f {
		return ' '
	}
	return r
}

// client returns an SMTP client for one delivery.
func (in *Input) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(in.port),
		gomail.WithTimeout(in.cfg.Timeout),
		gomail.WithTLSConfig(in.tls),
	}
	if in.ssl {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if in.user != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(in.user), gomail.WithPassword(in.password.Reveal()))
	}
	c, err := gomail.NewClient(in.host, opts...)
	if err != nil {
		return nil, errors.New("the SMTP client could not be set up from --smtp_url")
	}
	return c, nil
}

// permanent reports whether the SMTP server refused the mail for good (a
// 5xx answer): sending it again would be refused again.
func permanent(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	code := se.ErrorCode()
	return code >= 500 && code < 600
}

// ParseAddress returns the bare address (user@domain) of s, an address
// as a mail's To or From takes it ("alice@example.com", "Alice
// <alice@example.com>"), or says in a sentence why it is not one.
func ParseAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("no address")
	}
	a, err := netmail.ParseAddress(s)
	if err != nil || !strings.Contains(a.Address, "@") || strings.ContainsAny(a.Address, "\r\n") {
		return "", fmt.Errorf("%q is not a mail address (user@example.com)", s)
	}
	return a.Address, nil
}
