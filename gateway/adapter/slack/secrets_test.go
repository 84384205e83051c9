package slackgw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/botmesh/botmesh/sdk/meshtest"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botmesh/botmesh/gateway/adapter"
	"github.com/botmesh/botmesh/gateway/adapter/adaptertest/fakeslack"
	slackgw "github.com/botmesh/botmesh/gateway/adapter/slack"
	"github.com/botmesh/botmesh/sdk/flagenv"
)

// Known credentials, distinctive enough to find in any output.
const (
	knownBot     = "xoxb-9999-8888-KNOWNBOTTOKENq7"
	knownApp     = "xapp-1-A0001-7777-KNOWNAPPTOKENq7"
	knownSigning = "KNOWNSIGNINGSECRETq7c0ffee0123"
)

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{knownBot, knownApp, knownSigning, "KNOWNBOTTOKEN", "KNOWNAPPTOKEN", "KNOWNSIGNING"} {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains the secret %q", what, secret)
		}
	}
}

// The input runs with known tokens through start, messages, replies,
// errors, a rate limit, reconnects, refused tokens and forged requests;
// none of the tokens appears in the debug log, the errors or the health.
func TestSecretsNeverLogged(t *testing.T) {
	fs := fakeslack.New(t)
	fs.BotToken, fs.AppToken, fs.SigningSecret = knownBot, knownApp, knownSigning
	logs := &meshtest.Buffer{}
	var errs []error

	in := startInputWith(t, fs, logs, []slackgw.Option{slackgw.WithReconnectBackoff(10*time.Millisecond, 50*time.Millisecond, time.Minute)})
	ev := asked(t, fs, in, fs.Mention(general, user, "ping", ""))
	send(t, in, reply(ev, replyType, "pong"))
	send(t, in, reply(ev, errorType, "boom"))
	fs.RateLimit("chat.postMessage", 1, 1)
	send(t, in, reply(ev, replyType, "slow pong"))
	send(t, in, reply(ev, replyType, lines(1000, 60)))
	fs.NotMember(general)
	errs = append(errs, in.Send(context.Background(), reply(ev, replyType, "refused")))
	fs.SendRaw(t, -1, "", `{"type":"events_api","envelope_id":"x","payload":[1]}`)
	fs.Disconnect(t, "refresh_requested")
	fs.WaitAccepted(t, 2, 10*time.Second)
	fs.Drop()
	fs.WaitAccepted(t, 3, 10*time.Second)
	errs = append(errs, in.Healthy())

	for _, args := range [][]string{{"--slack_bot_token", "xoxb-0000-KNOWNBOTTOKENwrong"}, {"--slack_app_token", "xapp-1-KNOWNAPPTOKENwrong"}} {
		bad := newInput(t, fs, logs, args...)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := bad.Start(ctx)
		cancel()
		if err == nil {
			t.Fatalf("start with %s succeeded", args[0])
		}
		errs = append(errs, err, bad.Healthy(), bad.Stop(context.Background()))
	}

	h := startInput(t, fs, logs, "--slack_mode", "http")
	m := fs.DM(dm, user, "ping", "")
	fakeslack.Post(t, eventsURL(h), jsonType, m.Callback, fakeslack.Sign("KNOWNSIGNINGSECRETq7c0ffee0124", time.Now(), m.Callback))
	fakeslack.Post(t, eventsURL(h), jsonType, m.Callback, fakeslack.Sign(knownSigning, time.Now().Add(-time.Hour), m.Callback))
	if code, _ := fs.Deliver(t, eventsURL(h), jsonType, m.Callback, nil); code != http.StatusOK {
		t.Fatalf("delivery: %d", code)
	}
	recv(t, h, 5*time.Second)

	for _, bad := range [][]string{
		{"--slack_bot_token", "xoxp-KNOWNBOTTOKENuser"},
		{"--slack_app_token", "xoxb-KNOWNAPPTOKENbot"},
		{"--slack_mode", "websocket"},
	} {
		in := slackgw.NewInput()
		flags := flag.NewFlagSet("t", flag.ContinueOnError)
		in.Flags(flags)
		if err := flags.Parse(append([]string{"--slack_bot_token", knownBot, "--slack_app_token", knownApp}, bad...)); err != nil {
			t.Fatal(err)
		}
		err := in.Init(adapter.Env{})
		if err == nil {
			t.Fatalf("init with %v succeeded", bad)
		}
		errs = append(errs, err)
	}

	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "rate limited") || !strings.Contains(out, "reconnect") {
		t.Fatal("the log does not cover the run (debug lines, rate limit, reconnect)")
	}
	assertNoSecret(t, "the log", out)
	var all []string
	for _, err := range errs {
		if err != nil {
			all = append(all, err.Error())
		}
	}
	if len(all) < 6 {
		t.Fatalf("only %d errors checked: %q", len(all), all)
	}
	assertNoSecret(t, "the errors", strings.Join(all, "\n"))
	t.Logf("checked %d log bytes and %d errors", len(out), len(all))
}

// Tokens set from the environment or a file never show in --help, and a
// Config prints, logs and encodes them as [redacted].
func TestSecretsNeverPrinted(t *testing.T) {
	env := map[string]string{
		"BOTMESH_SLACK_BOT_TOKEN":      knownBot,
		"BOTMESH_SLACK_APP_TOKEN":      knownApp,
		"BOTMESH_SLACK_SIGNING_SECRET": knownSigning,
	}
	in := slackgw.NewInput()
	flags := flag.NewFlagSet("gateway", flag.ContinueOnError)
	var help bytes.Buffer
	flags.SetOutput(&help)
	in.Flags(flags)
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := flagenv.Parse(flags, []string{"-help"}, lookup); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parse -help: %v", err)
	}
	flags.PrintDefaults()
	usage := help.String()
	if !strings.Contains(usage, "BOTMESH_SLACK_BOT_TOKEN") || !strings.Contains(usage, "-slack_bot_token_file") {
		t.Fatalf("usage lacks the token flags:\n%s", usage)
	}
	assertNoSecret(t, "--help", usage)

	if err := in.Init(adapter.Env{}); err != nil {
		t.Fatal(err)
	}
	cfg := in.Config()
	if cfg.BotToken.Reveal() != knownBot || cfg.AppToken.Reveal() != knownApp {
		t.Fatal("the environment did not set the tokens")
	}
	js, _ := json.Marshal(cfg)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.BotToken)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.BotToken)
	printed := fmt.Sprintf("%v %+v %#v %s %q %x", cfg, cfg, cfg, cfg.BotToken, cfg.AppToken, cfg.SigningSecret) + string(js) + logged.String()
	assertNoSecret(t, "the printed config", printed)
	if !strings.Contains(printed, "[redacted]") {
		t.Errorf("secrets are not shown as [redacted]: %s", printed)
	}
}

// Secrets can come from files (a mounted secret); mistakes are reported
// by flag and file, never by value.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bot, app, empty := write("bot", knownBot+"\n"), write("app", "  "+knownApp+"\n"), write("empty", "\n")
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error, "" for none
	}{
		{"files", []string{"--slack_bot_token_file", bot, "--slack_app_token_file", app}, ""},
		{"both flag and file", []string{"--slack_bot_token", knownBot, "--slack_bot_token_file", bot, "--slack_app_token_file", app}, "set --slack_bot_token or --slack_bot_token_file, not both"},
		{"missing file", []string{"--slack_bot_token_file", filepath.Join(dir, "nope"), "--slack_app_token_file", app}, `--slack_bot_token_file "` + filepath.Join(dir, "nope") + `": no such file`},
		{"empty file", []string{"--slack_bot_token_file", empty, "--slack_app_token_file", app}, "is empty"},
		{"the Micro Bot's --slack_token is the bot token", []string{"--slack_token", knownBot, "--slack_app_token_file", app}, ""},
		{"--slack_token and --slack_bot_token_file", []string{"--slack_token", knownBot, "--slack_bot_token_file", bot, "--slack_app_token_file", app}, "set --slack_bot_token or --slack_bot_token_file, not both"},
		{"no tokens", nil, "set --slack_bot_token or BOTMESH_SLACK_BOT_TOKEN"},
		{"http mode without signing secret", []string{"--slack_mode", "http", "--slack_bot_token_file", bot}, "http mode needs the signing secret"},
		{"bad command", []string{"--slack_bot_token_file", bot, "--slack_app_token_file", app, "--slack_command", "bot"}, `--slack_command "bot"`},
		{"bad api url", []string{"--slack_bot_token_file", bot, "--slack_app_token_file", app, "--slack_api_url", "slack.com/api"}, "--slack_api_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slackgw.NewInput()
			flags := flag.NewFlagSet("t", flag.ContinueOnError)
			in.Flags(flags)
			if err := flags.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := in.Init(adapter.Env{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("init: %v", err)
			case tc.want == "":
				if in.Config().BotToken.Reveal() != knownBot || in.Config().AppToken.Reveal() != knownApp {
					t.Error("tokens not read from the files (trimmed)")
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("init: %v, want %q", err, tc.want)
			default:
				assertNoSecret(t, "the error", err.Error())
			}
		})
	}
}
