package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValueNeverShows(t *testing.T) {
	var v Value
	if err := v.Set("hunter2"); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "password", v)
	js, _ := json.Marshal(struct{ P Value }{v})
	for _, out := range []string{v.String(), fmt.Sprintf("%v %s %#v %+v", v, v, v, struct{ P Value }{v}), logs.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("the secret shows in %q", out)
		}
	}
	if v.Reveal() != "hunter2" {
		t.Errorf("Reveal = %q", v.Reveal())
	}
	var empty Value
	if empty.String() != "" {
		t.Errorf("an empty secret prints %q", empty.String())
	}
}

func TestFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte(" s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := FromFile(p)
	if err != nil || v.Reveal() != "s3cret" {
		t.Errorf("FromFile = %q, %v", v.Reveal(), err)
	}
	if _, err := FromFile(p + ".missing"); err == nil {
		t.Error("a missing file gave no error")
	}
}
