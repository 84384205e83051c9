// Package proto holds the greeter's wire contract. The Go code in
// greeter/v1 is generated from greeter/v1/greeter.proto by `make proto`
// (protoc from Debian's protobuf-compiler 3.21.12, protoc-gen-go and
// protoc-gen-micro at the versions pinned in tools/go.mod); `make
// proto-check` fails if regenerating would change the committed files.
package proto

//go:generate make -C ../../.. proto
