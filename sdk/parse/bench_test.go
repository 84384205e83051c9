package parse

import (
	"strings"
	"testing"
)

// benchInputs are typical messages, as the router receives them (the
// gateway has stripped the mention already).
var benchInputs = []struct{ name, text string }{
	{"ping", "ping"},
	{"echo", "echo hello world"},
	{"query", `query go.micro.srv.greeter Say.Hello {"name":"John"}`},
	{"utf8", "echo héllo wörld, ça va? 🚀"},
	{"4KB", fourKB()},
}

// fourKB returns an "echo" of a pasted log, 4096 bytes long: many short
// words and newlines, all ASCII.
func fourKB() string {
	const line = "2026-01-02T03:04:05.123Z INFO request served path=/api/v1/items status=200 took=12ms\n"
	var b strings.Builder
	b.WriteString("echo ")
	for b.Len() < 4096 {
		b.WriteString(line)
	}
	return b.String()[:4096]
}

// BenchmarkParse measures Parse on each input (path) against
// strings.Fields on the same text (baseline), the least any splitter does.
// Parse gets bytes, as the router does (Event.data); the baseline gets the
// string, so it does not pay for the conversion.
func BenchmarkParse(b *testing.B) {
	for _, in := range benchInputs {
		data := []byte(in.text)
		b.Run(in.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(data, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(in.text)))
			for b.Loop() {
				if len(strings.Fields(in.text)) == 0 {
					b.Fatal("no words")
				}
			}
		})
	}
}

// BenchmarkKey measures Message.Key, which the router computes for every
// message to match the built-ins (path), against strings.Join alone
// (baseline).
func BenchmarkKey(b *testing.B) {
	for _, in := range benchInputs {
		m, err := Parse([]byte(in.text), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(in.name+"/path", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.Key()
			}
		})
		b.Run(in.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = strings.Join(m.Words, " ")
			}
		})
	}
}
