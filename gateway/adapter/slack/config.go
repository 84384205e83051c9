package slackgw

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/botmesh/botmesh/sdk/secret"
)

// Modes in which Slack reaches the input.
const (
	// ModeSocket is Socket Mode: the input opens a websocket to Slack, so
	// no public URL is needed. The default.
	ModeSocket = "socket"
	// ModeHTTP is the Events API over HTTP: Slack POSTs events and slash
	// commands to the input's listener (behind a load balancer).
	ModeHTTP = "http"
)

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// Secret is a credential: it prints, logs and encodes as "[redacted]"
// (empty when unset), and Reveal returns the value.
type Secret = secret.Value

// secretFlag sets a Secret from the command line or the environment. Its
// String is always empty, so --help never prints a value, and Set never
// fails, so no error message can quote one.
type secretFlag struct{ s *Secret }

func (f secretFlag) String() string { return "" }

func (f secretFlag) Set(v string) error {
	*f.s = Secret(strings.TrimSpace(v))
	return nil
}

// Config is the Slack input's configuration; every field is a --slack_*
// flag (and a BOTMESH_SLACK_* variable).
type Config struct {
	// Mode is "socket" (Socket Mode, the default) or "http" (Events API).
	Mode string
	// AppToken is the app-level token (xapp-…) with the
	// connections:write scope; Socket Mode only.
	AppToken Secret
	// BotToken is the bot token (xoxb-…) replies are posted with.
	BotToken Secret
	// SigningSecret verifies that HTTP requests come from Slack; http mode
	// only.
	SigningSecret Secret
	// Listen is the address the http mode serves /slack/events and
	// /slack/commands on.
	Listen string
	// Command is the slash command the input answers, e.g. "/bot".
	Command string
	// Ephemeral makes slash command replies visible to the caller only.
	Ephemeral bool
	// APIURL is the Slack Web API base URL, ending in "/"
	// (https://slack-gov.com/api/ for GovSlack).
	APIURL string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Mode: ModeSocket, Listen: ":3000", Command: "/bot", APIURL: DefaultAPIURL}
}

// secretFiles are the --slack_*_file flags: a secret read from a file (a
// mounted Kubernetes or Docker secret).
type secretFiles struct {
	app, bot, signing string
	// botAlias is --slack_token, the Micro Bot's name for the bot token.
	botAlias Secret
}

func (c *Config) registerFlags(fs *flag.FlagSet, files *secretFiles) {
	fs.StringVar(&c.Mode, "slack_mode", c.Mode, `how Slack reaches the gateway: "socket" (Socket Mode, no public URL) or "http" (Events API, Slack POSTs to --slack_listen)`)
	fs.Var(secretFlag{&c.AppToken}, "slack_app_token", "Slack app-level token (xapp-…, scope connections:write) for Socket Mode")
	fs.StringVar(&files.app, "slack_app_token_file", "", "file holding the Slack app-level token (instead of --slack_app_token)")
	fs.Var(secretFlag{&c.BotToken}, "slack_bot_token", "Slack bot token (xoxb-…)")
	fs.StringVar(&files.bot, "slack_bot_token_file", "", "file holding the Slack bot token (instead of --slack_bot_token)")
	fs.Var(secretFlag{&files.botAlias}, "slack_token", "the Slack bot token under the Micro Bot's flag name: the same as --slack_bot_token")
	fs.Var(secretFlag{&c.SigningSecret}, "slack_signing_secret", "Slack signing secret, verifies requests in http mode")
	fs.StringVar(&files.signing, "slack_signing_secret_file", "", "file holding the Slack signing secret (instead of --slack_signing_secret)")
	fs.StringVar(&c.Listen, "slack_listen", c.Listen, "address the http mode listens on for /slack/events and /slack/commands")
	fs.StringVar(&c.Command, "slack_command", c.Command, "slash command the bot answers")
	fs.BoolVar(&c.Ephemeral, "slack_ephemeral", c.Ephemeral, "reply to the slash command so that only its caller sees the reply")
	fs.StringVar(&c.APIURL, "slack_api_url", c.APIURL, "Slack Web API base URL")
}

// readSecretFiles fills the secrets given as files. Errors name the flag
// and the file, never the content.
func (c *Config) readSecretFiles(files secretFiles) error {
	var errs []error
	if files.botAlias != "" {
		if c.BotToken != "" {
			errs = append(errs, errors.New("slack: --slack_token and --slack_bot_token are the same token: set one of them"))
		} else {
			c.BotToken = files.botAlias
		}
	}
	for _, f := range []struct {
		name, path string
		dst        *Secret
	}{
		{"slack_app_token", files.app, &c.AppToken},
		{"slack_bot_token", files.bot, &c.BotToken},
		{"slack_signing_secret", files.signing, &c.SigningSecret},
	} {
		if f.path == "" {
			continue
		}
		if *f.dst != "" {
			errs = append(errs, fmt.Errorf("slack: set --%s or --%s_file, not both", f.name, f.name))
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is quoted below
			}
			errs = append(errs, fmt.Errorf("slack: --%s_file %q: %w", f.name, f.path, err))
			continue
		}
		*f.dst = Secret(strings.TrimSpace(string(b)))
		if *f.dst == "" {
			errs = append(errs, fmt.Errorf("slack: --%s_file %q is empty", f.name, f.path))
		}
	}
	return errors.Join(errs...)
}

// NeedAppToken is the error of a Socket Mode configuration without the
// app-level token: the bot token alone (the Micro Bot's --slack_token) is
// not enough to open the socket.
const NeedAppToken = "slack: Socket Mode needs an app-level token besides the bot token: " +
	"add --slack_app_token or BOTMESH_SLACK_APP_TOKEN, an xapp-… token with the connections:write scope " +
	"(your Slack app's settings, Basic Information → App-Level Tokens), " +
	"or use --slack_mode http with --slack_signing_secret and a public URL for Slack's events"

// Validate reports what is missing or wrong, in words for a user, without
// quoting a secret.
func (c Config) Validate() error {
	var errs []error
	switch c.Mode {
	case ModeSocket:
		if c.AppToken == "" {
			errs = append(errs, errors.New(NeedAppToken))
		} else if !strings.HasPrefix(c.AppToken.Reveal(), "xapp-") {
			errs = append(errs, errors.New("slack: --slack_app_token is not an app-level token (they start with xapp-)"))
		}
	case ModeHTTP:
		if c.SigningSecret == "" {
			errs = append(errs, errors.New("slack: http mode needs the signing secret: set --slack_signing_secret or BOTMESH_SLACK_SIGNING_SECRET"))
		}
		if c.Listen == "" {
			errs = append(errs, errors.New("slack: http mode needs --slack_listen"))
		}
	default:
		errs = append(errs, fmt.Errorf("slack: --slack_mode %q: use %q or %q", c.Mode, ModeSocket, ModeHTTP))
	}
	if c.BotToken == "" {
		errs = append(errs, errors.New("slack: set --slack_bot_token or BOTMESH_SLACK_BOT_TOKEN (xoxb-…)"))
	} else if !strings.HasPrefix(c.BotToken.Reveal(), "xoxb-") {
		errs = append(errs, errors.New("slack: --slack_bot_token is not a bot token (they start with xoxb-)"))
	}
	if !strings.HasPrefix(c.Command, "/") || len(c.Command) < 2 || strings.ContainsAny(c.Command, " \t\r\n") {
		errs = append(errs, fmt.Errorf("slack: --slack_command %q: a slash command is / and a word, e.g. /bot", c.Command))
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || !strings.HasSuffix(u.Path, "/") {
		errs = append(errs, fmt.Errorf("slack: --slack_api_url %q: want an http(s) URL ending in /", c.APIURL))
	}
	return errors.Join(errs...)
}
