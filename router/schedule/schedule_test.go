package schedule_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/botmesh/botmesh/router/schedule"
)

// now is a fixed Sunday afternoon, 14:00:30 UTC (15:00:30 in Berlin).
var now = time.Date(2026, 12, 6, 14, 0, 30, 0, time.UTC)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		kind       schedule.Kind
		pattern    string
		zone       string
		command    string
		note       string // a substring of Note ("" means no note)
	}{
		{"in", "in 10m health greeter", schedule.In, "@at 2026-12-06T14:10:30Z", "", "health greeter", ""},
		{"in keeps the command's spacing", `IN 90s query greeter Greeter.Hello {"name": "a  b"}`, schedule.In, "@at 2026-12-06T14:02:00Z", "", `query greeter Greeter.Hello {"name": "a  b"}`, ""},
		{"at later today, UTC", "at 17:30 list services", schedule.At, "@at 2026-12-06T17:30:00Z", "", "list services", ""},
		{"at with a zone", "at 17:30 Europe/Berlin list services", schedule.At, "@at 2026-12-06T16:30:00Z", "", "list services", ""},
		{"at passed today means tomorrow", "at 9:15 Europe/Berlin ping", schedule.At, "@at 2026-12-07T08:15:00Z", "", "ping", "has passed today: it runs tomorrow"},
		{"at with seconds and an upper-case zone", "at 14:00:45 UTC ping", schedule.At, "@at 2026-12-06T14:00:45Z", "", "ping", ""},
		{"at a date", "at 2026-12-24 17:30 Europe/Berlin echo merry", schedule.At, "@at 2026-12-24T16:30:00Z", "", "echo merry", ""},
		{"at a date, one word", "at 2027-01-01T00:00 ping", schedule.At, "@at 2027-01-01T00:00:00Z", "", "ping", ""},
		{"every", "every 1s echo hi", schedule.Every, "@every 1s", "", "echo hi", ""},
		{"every is normalised", "every 90m ping", schedule.Every, "@every 1h30m0s", "", "ping", ""},
		{"cron", `cron "0 30 9 * * 1-5" health greeter`, schedule.Cron, "0 30 9 * * 1-5", "", "health greeter", ""},
		{"cron with a zone and curly quotes", "cron “0  0 9 * * *” Europe/Berlin ping", schedule.Cron, "0 0 9 * * *", "Europe/Berlin", "ping", ""},
		{"cron predefined", "cron @Hourly ping", schedule.Cron, "@hourly", "", "ping", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := schedule.Parse(tc.text, now)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.text, err)
			}
			if s.Kind != tc.kind || s.Pattern != tc.pattern || s.TimeZone != tc.zone || s.Command != tc.command {
				t.Errorf("Parse(%q) = kind %d pattern %q zone %q command %q; want %d %q %q %q", tc.text, s.Kind, s.Pattern, s.TimeZone, s.Command, tc.kind, tc.pattern, tc.zone, tc.command)
			}
			if tc.note == "" && s.Note != "" || !strings.Contains(s.Note, tc.note) {
				t.Errorf("note %q, want one with %q", s.Note, tc.note)
			}
			if s.Desc == "" {
				t.Error("no description")
			}
			if s.Kind == schedule.In || s.Kind == schedule.At {
				if !s.When.After(now) || "@at "+s.When.Format(time.RFC3339) != s.Pattern {
					t.Errorf("When %v does not match pattern %q", s.When, s.Pattern)
				}
			}
		})
	}
}

// Bad input is refused with a sentence that says what is wrong.
func TestParseRefusals(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"in", "usage: in DURATION COMMAND"},
		{"in 10m", "which command should run?"},
		{"in ten echo hi", `"ten" is not a duration`},
		{"in 500ms echo hi", "too short: the shortest is 1s"},
		{"in -5m echo hi", "too short"},
		{"in 9000h echo hi", "too long"},
		{"every 0.5s echo hi", "too short: the shortest is 1s"},
		{"every 1s", "which command should run?"},
		{"at 25:00 ping", `"25:00" is not a time`},
		{"at tomorrow ping", `"tomorrow" is not a time`},
		{"at 17:30 Mars/Olympus ping", `"Mars/Olympus" is not a time zone`},
		{"at 2020-01-01 10:00 ping", "has passed: a schedule must be in the future"},
		{"at 2026-12-06 14:00 UTC ping", "has passed"},
		{"at 2030-01-01 10:00 ping", "more than 366 days away"},
		{"at 2026-12-24", "usage: at TIME"},
		{`cron "0 30 9 * *" ping`, "it has 5 fields"},
		{`cron "0 30 9 * * 1-5 ping`, "no closing quote"},
		{`cron 0 30 9 * * * ping`, "put the cron expression in double quotes"},
		{`cron "0 30 9 * * $" ping`, "is not a cron expression"},
		{`cron "0 0 9 * * *"`, "which command should run?"},
		{"every 1m every 1s ping", "cannot set or change schedules"},
		{"in 1m unschedule abc", "cannot set or change schedules"},
		{"later 1m ping", "is not a scheduling command"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			s, err := schedule.Parse(tc.text, now)
			if err == nil {
				t.Fatalf("Parse(%q) accepted: %+v", tc.text, s)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q): %q, want it to say %q", tc.text, err, tc.want)
			}
		})
	}
}

// FuzzParse: whatever a user types after in, at, every or cron, Parse
// neither panics nor accepts a schedule nats-server would refuse or that
// fires in the past, below a second apart, or without a command.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"in 10m health greeter", "at 17:30 Europe/Berlin list services", "every 1s echo hi",
		`cron "0 30 9 * * 1-5" Europe/Berlin ping`, "at 2026-12-24T17:30 ping", "cron “@daily” ping",
		"in 1h", "at 99:99 x", "every 1ns x", `cron "`, "at 1:00 ../../etc/passwd x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := schedule.Parse(text, now)
		if err != nil {
			if !utf8.ValidString(err.Error()) && utf8.ValidString(text) {
				t.Errorf("error not valid UTF-8: %q", err)
			}
			return
		}
		if strings.TrimSpace(s.Command) == "" {
			t.Errorf("Parse(%q) accepted without a command", text)
		}
		switch s.Kind {
		case schedule.In, schedule.At:
			if !s.When.After(now) || s.Pattern != "@at "+s.When.UTC().Format(time.RFC3339) || s.TimeZone != "" {
				t.Errorf("Parse(%q): one-time schedule at %v, pattern %q, zone %q", text, s.When, s.Pattern, s.TimeZone)
			}
		case schedule.Every:
			d, err := time.ParseDuration(strings.TrimPrefix(s.Pattern, "@every "))
			if err != nil || d < time.Second || d != s.Interval || s.TimeZone != "" {
				t.Errorf("Parse(%q): pattern %q, interval %s, zone %q", text, s.Pattern, s.Interval, s.TimeZone)
			}
		case schedule.Cron:
			if s.TimeZone != "" {
				if _, err := time.LoadLocation(s.TimeZone); err != nil {
					t.Errorf("Parse(%q): zone %q does not load", text, s.TimeZone)
				}
			}
			if !strings.HasPrefix(s.Pattern, "@") && len(strings.Fields(s.Pattern)) != 6 {
				t.Errorf("Parse(%q): cron pattern %q", text, s.Pattern)
			}
		default:
			t.Errorf("Parse(%q): kind %d", text, s.Kind)
		}
	})
}

// Time zones whose clocks change within the window, on a fixed clock: "at"
// is computed in the zone's own rules on the day it runs (not the offset
// of today), and a time that does not exist or happens twice that day is
// said. (nats-server evaluates cron in its Nats-Schedule-Time-Zone on its
// own clock, which a test cannot set: cron across a change is not covered
// here; every is an interval, the same in any zone.)
func TestParseAcrossClockChanges(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		now        time.Time
		pattern    string
		note       string
	}{
		{"tomorrow is winter time", "at 9:00 Europe/Berlin ping", time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC),
			"@at 2026-10-25T08:00:00Z", "9:00 Europe/Berlin has passed today: it runs tomorrow"},
		{"tomorrow is summer time", "at 9:00 Europe/Berlin ping", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			"@at 2026-03-29T07:00:00Z", "9:00 Europe/Berlin has passed today: it runs tomorrow"},
		{"later today, after the clocks went back", "at 23:00 America/New_York ping", time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
			"@at 2026-11-02T04:00:00Z", ""},
		{"a time that does not exist", "at 2026-03-29 02:30 Europe/Berlin ping", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			"@at 2026-03-29T01:30:00Z", "02:30 does not exist in Europe/Berlin on Sun 29 Mar (the clocks go forward): it runs at 03:30:00 CEST"},
		{"a time that happens twice", "at 2026-10-25 02:30 Europe/Berlin ping", time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC),
			"@at 2026-10-25T01:30:00Z", "02:30 happens twice in Europe/Berlin on Sun 25 Oct (the clocks go back): it runs at the second, 02:30:00 CET"},
		{"tomorrow does not have it", "at 2:30 Europe/Berlin ping", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC),
			"@at 2026-03-29T01:30:00Z", "2:30 Europe/Berlin has passed today: it runs tomorrow; 2:30 does not exist in Europe/Berlin on Sun 29 Mar (the clocks go forward): it runs at 03:30:00 CEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := schedule.Parse(tc.text, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if s.Pattern != tc.pattern || s.Note != tc.note {
				t.Errorf("Parse(%q) at %s = %q, note %q; want %q, note %q", tc.text, tc.now, s.Pattern, s.Note, tc.pattern, tc.note)
			}
		})
	}
}
