// Package proto holds the botmesh wire contract. The Go code in chatops/v1 is
// generated from chatops/v1/bot.proto by `make proto` (protoc from Debian's
// protobuf-compiler 3.21.12, protoc-gen-go and protoc-gen-micro at the
// versions pinned in tools/go.mod); `make proto-check` fails if regenerating
// would change the committed files.
package proto

//go:generate make -C .. proto
