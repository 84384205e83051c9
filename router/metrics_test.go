package router_test

import (
	"strings"
	"testing"

	"github.com/botmesh/botmesh/router"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	e := newEnv(t, router.Config{})
	reg := prometheus.NewRegistry()
	if err := e.r.Register(reg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		e.ask("ping")
	}
	e.ask("nosuch")
	want := `
# HELP botmesh_router_commands_total Commands by name and outcome (ok, error, timeout, unknown, denied, confirm, cancelled, limited, rejected).
# TYPE botmesh_router_commands_total counter
botmesh_router_commands_total{command="(none)",status="unknown"} 1
botmesh_router_commands_total{command="ping",status="ok"} 3
# HELP botmesh_router_messages_total Messages the router handled, by platform.
# TYPE botmesh_router_messages_total counter
botmesh_router_messages_total{platform="test"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "botmesh_router_commands_total", "botmesh_router_messages_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "botmesh_router_command_duration_seconds"); err != nil || n != 2 {
		t.Errorf("duration series: %d, %v; want 2 (ping and (none))", n, err)
	}
}
