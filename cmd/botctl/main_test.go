package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/botmesh/botmesh/sdk/natsconn"
)

// Where botctl's credentials and URL come from: the all-in-one's file by
// default, unless credentials or an address are given.
func TestUseCredsFile(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	def := filepath.Join(home, "botmesh", "allinone.creds")

	t.Run("no file yet", func(t *testing.T) {
		cfg := natsconn.DefaultConfig()
		cu := useCredsFile(&cfg, false)
		if cu.file != def || cfg.Auth.Creds != "" || cfg.NATSURL != natsconn.DefaultConfig().NATSURL {
			t.Errorf("%+v, creds %q, url %s", cu, cfg.Auth.Creds, cfg.NATSURL)
		}
	})
	if err := natsconn.WriteCredsFile(def, natsconn.CredsFile{URL: "nats://127.0.0.1:40001", User: "admin", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.creds")
	if err := natsconn.WriteCredsFile(other, natsconn.CredsFile{URL: "tls://10.0.0.5:4222", User: "admin", Password: "pw2"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		edit      func(*natsconn.Config)
		natsGiven bool
		creds     string
		url       string
	}{
		{name: "the default file and its URL", creds: def, url: "nats://127.0.0.1:40001"},
		{name: "an address given", natsGiven: true, edit: func(c *natsconn.Config) { c.NATSURL = "nats://127.0.0.1:4222" }, creds: def, url: "nats://127.0.0.1:4222"},
		{name: "--nats_creds", edit: func(c *natsconn.Config) { c.Auth.Creds = other }, creds: other, url: "tls://10.0.0.5:4222"},
		{name: "a password given", edit: func(c *natsconn.Config) { c.Auth.User, c.Auth.Password = "bob", "x" }, url: natsconn.DefaultConfig().NATSURL},
		{name: "--find_nats", edit: func(c *natsconn.Config) { c.FindNATS = true }, creds: def, url: natsconn.DefaultConfig().NATSURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := natsconn.DefaultConfig()
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			useCredsFile(&cfg, tc.natsGiven)
			if cfg.Auth.Creds != tc.creds || cfg.NATSURL != tc.url {
				t.Errorf("creds %q, url %s; want %q, %s", cfg.Auth.Creds, cfg.NATSURL, tc.creds, tc.url)
			}
		})
	}
	if _, err := os.Stat(def); err != nil {
		t.Fatal(err)
	}
}
