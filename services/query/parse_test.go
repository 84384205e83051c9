package query_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/botmesh/botmesh/services/query"
	"github.com/botmesh/botmesh/services/registry-cmd/jsonarg"
)

func TestParseCall(t *testing.T) {
	for _, tc := range []struct {
		in                    string
		service, method, body string
	}{
		{`query greeter Greeter.Hello {"name":"Ada"}`, "greeter", "Greeter.Hello", `{"name":"Ada"}`},
		{`query greeter Greeter.Hello`, "greeter", "Greeter.Hello", `{}`},
		{"query  greeter\tGreeter.Hello\n{\n  \"name\":  \"Ada Lovelace\"\n}", "greeter", "Greeter.Hello", "{\n  \"name\":  \"Ada Lovelace\"\n}"},
		{`query greeter Greeter.Hello{"name":"Ada"}`, "greeter", "Greeter.Hello", `{"name":"Ada"}`},
		{"query greeter Greeter.Hello ```json\n{\"name\":\"Ada\"}\n```", "greeter", "Greeter.Hello", `{"name":"Ada"}`},
		{"query greeter Greeter.Hello `{\"name\":\"Ada\"}`", "greeter", "Greeter.Hello", `{"name":"Ada"}`},
		{`QUERY go.micro.srv.x X.Y [1,2]`, "go.micro.srv.x", "X.Y", `[1,2]`},
	} {
		c, err := query.ParseCall(tc.in)
		if err != nil || c.Service != tc.service || c.Method != tc.method || string(c.Body) != tc.body {
			t.Errorf("%q: %+v (body %q), %v", tc.in, c, c.Body, err)
		}
	}
}

// Every bad query gets a sentence that says what to type.
func TestParseCallErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"nothing", "query", `which service and method? Usage: query [service] [method] [json], e.g. query greeter Greeter.Hello {"name":"Ada"}`},
		{"no method", "query greeter", "which method of greeter? Usage: query [service] [method] [json], e.g. query greeter Greeter.Hello {}"},
		{"JSON first", `query {"name":"Ada"}`, "the JSON comes after [service] and [method]. Usage: query [service] [method] [json]"},
		{"method without service part", "query greeter Hello", `method "Hello" should be Service.Method, e.g. Greeter.Hello`},
		{"method with two dots", "query greeter a.b.c", `method "a.b.c" should be Service.Method, e.g. Greeter.Hello`},
		{"method ends with a dot", "query greeter Greeter.", `method "Greeter." should be Service.Method, e.g. Greeter.Hello`},
		{"malformed JSON", `query greeter Greeter.Hello {"name":"Ada",}`, "malformed JSON at line 1, column 15: invalid character '}' looking for beginning of object key string (near `name\":\"Ada\",}`)"},
		{"malformed on line 3", "query greeter Greeter.Hello {\n \"name\": \"Ada\",\n \"age\": 3x\n}", "malformed JSON at line 3, column 10: invalid character 'x' after object key:value pair (near `\", \"age\": 3x }`)"},
		{"two values", `query greeter Greeter.Hello {} {}`, "malformed JSON at line 1, column 4: unexpected text after the JSON value (give one value; wrap several in [ ]) (near `{} {}`)"},
		{"words, not JSON", `query greeter Greeter.Hello name Ada`, "malformed JSON at line 1, column 2: invalid character 'a' in literal null (expecting 'u') (near `name Ada`)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := query.ParseCall(tc.in)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got %+v, error\n%v\nwant\n%s", c, err, tc.want)
			}
		})
	}
}

// FuzzParseCall feeds untrusted message text to the query parser: it never
// panics, its errors are readable sentences, and what it accepts is a
// Service.Method with one valid JSON value that came from the text.
func FuzzParseCall(f *testing.F) {
	for _, s := range []string{
		`query greeter Greeter.Hello {"name":"Ada"}`,
		`query greeter Greeter.Hello`,
		"query greeter Greeter.Hello ```json\n{\"name\":\"Ada\"}\n```",
		`query greeter Greeter.Hello{"a":[1,2,{"b":null}]}`,
		`query greeter Hello`, `query`, `query {}`, `query a b.c {"x":`, "query a b.c `{}`", "query a b.c {“x”:1}",
		"query \xff \xfe.\xfd {}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := query.ParseCall(in)
		if err != nil {
			msg := err.Error()
			if msg == "" || !utf8.ValidString(msg) && utf8.ValidString(in) || len(msg) > 2000 {
				t.Fatalf("unreadable error %q", msg)
			}
			var u *query.UsageError
			var s *jsonarg.SyntaxError
			if !errors.As(err, &u) && !errors.As(err, &s) {
				t.Fatalf("error %T %v is neither a usage nor a JSON error", err, err)
			}
			return
		}
		svc, fn, ok := strings.Cut(c.Method, ".")
		if c.Service == "" || !ok || svc == "" || fn == "" || strings.ContainsAny(c.Service+c.Method, " \t\n") {
			t.Fatalf("accepted %+v", c)
		}
		if err := jsonarg.Check(c.Body); err != nil {
			t.Fatalf("accepted body %q: %v", c.Body, err)
		}
		if string(c.Body) != "{}" && !strings.Contains(in, strings.TrimSpace(string(c.Body))) {
			t.Fatalf("body %q is not from the text %q", c.Body, in)
		}
	})
}
