package router

import "testing"

// Usages and descriptions in the micro CLI's form (NAME) read as the
// Micro Bot's ([name]); literal words stay.
func TestSeedForm(t *testing.T) {
	for _, tc := range []struct{ usage, desc, wantUsage, wantDesc string }{
		{"get service NAME", "Shows NAME's nodes", "get service [name]", "Shows [name]'s nodes"},
		{"query SERVICE METHOD [JSON]", "Calls METHOD of SERVICE with a JSON request", "query [service] [method] [json]", "Calls [method] of [service] with a [json] request"},
		{"echo [text]", "Returns the [text]", "echo [text]", "Returns the [text]"},
		{`cron "S M H DOM MON DOW" [ZONE] COMMAND`, "Runs COMMAND on a cron expression (DOM is the day of the month), UTC unless ZONE", `cron "S M H DOM MON DOW" [zone] [command]`, "Runs [command] on a cron expression (DOM is the day of the month), UTC unless [zone]"},
		{"note add TEXT | note forget N", "Keeps a note, or forgets note N", "note add [text] | note forget [n]", "Keeps a note, or forgets note [n]"},
		{"login USER PASSWORD", "Logs USER in. A PASSWORD is secret; NATS, JSON and RPC stay", "login [user] [password]", "Logs [user] in. A [password] is secret; NATS, JSON and RPC stay"},
		{"PING", "Returns PONG", "PING", "Returns PONG"},
		{"list services", "Lists the services (e.g. Greeter.Hello)", "list services", "Lists the services (e.g. Greeter.Hello)"},
		{"deploy [NAME", "half a bracket: NAME]", "deploy [NAME", "half a bracket: NAME]"},
	} {
		e := newEntry("x", tc.usage, tc.desc)
		if e.usage != tc.wantUsage || e.desc != tc.wantDesc {
			t.Errorf("%q - %q:\ngot  %q - %q\nwant %q - %q", tc.usage, tc.desc, e.usage, e.desc, tc.wantUsage, tc.wantDesc)
		}
	}
}
