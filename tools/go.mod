// Module tools pins the code generators (`make proto`) and the linter
// (`make lint`) at exact versions. It is kept apart from the workspace so
// that tool dependencies never enter the build graph of botmesh's modules.
module github.com/botmesh/botmesh/tools

go 1.26.0

tool (
	github.com/go-micro/generator/cmd/protoc-gen-micro
	google.golang.org/protobuf/cmd/protoc-gen-go
	honnef.co/go/tools/cmd/staticcheck
)

require (
	github.com/go-micro/generator/cmd/protoc-gen-micro v1.0.0 // indirect
	// protoc-gen-micro v1.0.0 does not build with the golang/protobuf that
	// it asks for (v1.5.2) next to protobuf v1.36; v1.5.4 does.
	github.com/golang/protobuf v1.5.4 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)

require (
	github.com/BurntSushi/toml v1.4.1-0.20240526193622-a339e1f7089c // indirect
	golang.org/x/exp/typeparams v0.0.0-20231108232855-2478ac86f678 // indirect
	golang.org/x/mod v0.41.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/tools v0.51.0 // indirect
	google.golang.org/genproto v0.0.0-20200305110556-506484158171 // indirect
	honnef.co/go/tools v0.8.2 // indirect
)
