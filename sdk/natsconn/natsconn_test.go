package natsconn_test

import (
	"strings"
	"testing"

	"github.com/botmesh/botmesh/sdk/natsconn"
)

func TestRedactURL(t *testing.T) {
	got := natsconn.RedactURL("nats://bob:s3cret@h1:4222, nats://tok@h2:4222,h3:4222")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok") || got != "nats://[REDACTED]@h1:4222,nats://[REDACTED]@h2:4222,h3:4222" {
		t.Errorf("redacted %q", got)
	}
}
