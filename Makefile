# The Makefile owns the exact commands; README and .ci/run call these targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
# Every package of every workspace module (go.work).
PKGS  := github.com/botmesh/botmesh/...
GOFILES = $(shell git ls-files '*.go' 2>/dev/null | grep -v '\.pb\.' ; git ls-files -o --exclude-standard '*.go' 2>/dev/null | grep -v '\.pb\.')
# Packages with fuzz targets, and how long `make fuzz` runs each target.
FUZZ_TIME ?= 10s

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: run
run: ## run the all-in-one (embedded NATS, router, services, shell)
	$(GO) run ./cmd/botmesh

.PHONY: build
build: ## build every binary into bin/
	$(GO) build -o $(BIN)/ ./cmd/botmesh ./cmd/botctl ./router/cmd/router ./gateway/cmd/gateway ./services/echo/cmd/echo ./services/registry-cmd/cmd/registry-cmd ./services/query/cmd/query ./services/note/cmd/note ./services/greeter/cmd/greeter ./services/relay/cmd/relay
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

.PHONY: deps
deps: ## install the Debian packages the tests need (or say the one command that does)
	@tools/debian-deps.sh

.PHONY: test
test: deps ## unit, integration and end-to-end tests, with the race detector
	$(GO) test -race -count=1 -timeout 20m $(PKGS)
	cd deploy && GOWORK=off $(GO) test -count=1 -timeout 5m ./...

.PHONY: test-short
test-short: ## quick tests only (no multi-process runs)
	$(GO) test -short -count=1 $(PKGS)

.PHONY: test-mdns
test-mdns: deps ## mdns tests (go-micro's mdns registry; NATS found on the LAN), inside a network namespace with multicast on lo (needs root)
	$(GO) test -c -race -tags mdns -o $(BIN)/e2e-mdns.test ./e2e
	$(GO) test -c -race -tags mdns -o $(BIN)/lan-mdns.test ./sdk/lan
	unshare -n sh -c 'ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && $(BIN)/lan-mdns.test -test.count=1 -test.v && exec $(BIN)/e2e-mdns.test -test.run MDNS -test.count=1 -test.v'

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZ_TIME (corpus in testdata/fuzz)
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(PKGS)); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; out=$$(mktemp); \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZ_TIME) $$pkg 2>&1 | tee $$out; \
	    if [ $${PIPESTATUS[0]} -ne 0 ]; then \
	      if grep -q 'context deadline exceeded' $$out && ! grep -q 'Failing input' $$out; then \
	        echo "fuzz $$pkg $$f: go's fuzzing engine stopped at its time limit without a failing input (a known flake of the engine); once more"; \
	        $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	      else rm -f $$out; exit 1; fi; \
	    fi; rm -f $$out; \
	  done; done

.PHONY: fmt
fmt: ## format the code
	gofmt -w $(GOFILES)

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(BIN)/staticcheck $(PKGS)

# Generators and linter come from tools/go.mod at pinned versions; protoc
# from Debian's protobuf-compiler (3.21.12), with libprotobuf-dev for the
# well-known types.
$(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/staticcheck: tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go github.com/go-micro/generator/cmd/protoc-gen-micro honnef.co/go/tools/cmd/staticcheck

PROTOC = protoc --plugin=protoc-gen-go=$(BIN)/protoc-gen-go --plugin=protoc-gen-micro=$(BIN)/protoc-gen-micro

.PHONY: proto
proto: $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro ## regenerate the Go code of the .proto files
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler libprotobuf-dev"; exit 1; }
	$(PROTOC) -I proto --go_out=proto --go_opt=paths=source_relative --micro_out=proto --micro_opt=paths=source_relative proto/chatops/v1/bot.proto
	$(PROTOC) -I router/internal/microbot --go_out=router/internal/microbot --go_opt=paths=source_relative --micro_out=router/internal/microbot --micro_opt=paths=source_relative bot.proto
	$(PROTOC) -I services/greeter/proto --go_out=services/greeter/proto --go_opt=paths=source_relative --micro_out=services/greeter/proto --micro_opt=paths=source_relative greeter/v1/greeter.proto

.PHONY: proto-check
proto-check: proto ## fail if the committed generated code differs from what `make proto` makes
	@git diff --exit-code -- '*.pb.go' '*.pb.micro.go' || { echo "generated code is stale: run make proto and commit"; exit 1; }

.PHONY: test-compose
test-compose: ## the compose environment end to end: images, scaling behind the front door, added services, make up's wait, killed routers and NATS nodes (needs docker)
	cd deploy && GOWORK=off $(GO) test -tags compose -count=1 -timeout 30m -v -run 'TestCompose' ./...

.PHONY: test-readme
test-readme: ## README.md verbatim: its shell blocks in order in a fresh clone of HEAD, outputs compared (needs docker and the ports 4222 and 8080)
	cd deploy && GOWORK=off $(GO) test -tags readme -count=1 -timeout 30m -v -run 'TestREADME' ./...

# Packages with Go benchmarks of the hot paths.
BENCH_PKGS := ./sdk/parse ./router ./router/directory ./router/policy ./proto/chatops/v1 ./gateway/adapter/slack ./gateway/adapter/irc

.PHONY: bench
bench: ## Go benchmarks of the hot paths, each beside its baseline (BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchmem $(BENCH_PKGS)

.PHONY: botbench
botbench: build ## the mesh as deployed, beside raw NATS, raw go-micro and their composite floor (BENCH_FLAGS=--json for JSON)
	$(GO) run ./cmd/botbench --bin $(BIN) $(BENCH_FLAGS)

.PHONY: peerbench
peerbench: build ## botmesh beside Errbot through one Prosody it starts, both bots in each round (PEER_FLAGS="--rounds 5 --json")
	$(GO) run ./cmd/peerbench --bin $(BIN) $(PEER_FLAGS)

.PHONY: bench-check
bench-check: build ## every Go benchmark once, a short botbench and a short peerbench: they keep working (figures are not judged)
	$(GO) test -run '^$$' -bench . -benchtime 1x $(BENCH_PKGS) >/dev/null
	$(GO) run ./cmd/botbench --bin $(BIN) --count 2000 --single_count 200 --warmup 200 --burst 1000 --idle 2s --json > $(BIN)/botbench.json
	$(GO) run ./cmd/botbench --check $(BIN)/botbench.json
	$(GO) run ./cmd/peerbench --bin $(BIN) --rounds 1 --single 50 --duration 3s --idle 1s --timeout 5m --json > $(BIN)/peerbench.json

.PHONY: ci
ci: lint proto-check test test-mdns fuzz bench-check test-compose test-readme ## what .ci/run runs

# The images' tag; compose runs the images of this tag.
TAG ?= $(or $(BOTMESH_TAG),dev)
# The compose environment: deploy/compose.sh picks docker compose (v2) when
# present, else docker-compose (1.29), and waits for health itself.
COMPOSE_SH := BOTMESH_TAG=$(TAG) deploy/compose.sh

.PHONY: images
images: ## build the container images (FROM scratch, nothing pulled)
	deploy/images.sh $(TAG)

# make image CMD=./services/mycmd/cmd/mycmd: the image botmesh/mycmd (the
# last element of CMD, or NAME=…) of one command service, built like the others.
.PHONY: image
image: ## one command service's image: make image CMD=./services/mycmd/cmd/mycmd [NAME=mycmd]
	@[ -n "$(CMD)" ] || { echo 'usage: make image CMD=./path/of/its/main [NAME=name] [TAG=dev]'; exit 2; }
	deploy/images.sh $(TAG) $(or $(NAME),$(notdir $(patsubst %/,%,$(CMD))))=$(CMD)

# An .env of an earlier version gets the passwords of the roles added since
# (it is remade when this Makefile changes; what it has is kept).
.env: Makefile ## secrets for the compose environment, made once: one NATS password per role, the web token
	@umask 077; touch .env; added=; \
	for role in ROUTER GATEWAY_WEB GATEWAY_SLACK GATEWAY_XMPP GATEWAY_IRC GATEWAY_SHELL GATEWAY_MAIL BOTCTL SERVICE SERVICE_NOTE PROCESSOR_RELAY ROUTE; do \
	  grep -q "^BOTMESH_NATS_PASSWORD_$$role=" .env && continue; \
	  echo "BOTMESH_NATS_PASSWORD_$$role=$$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" >> .env; added="$$added $$role"; \
	done; \
	grep -q '^BOTMESH_WEB_TOKEN=' .env || { echo "BOTMESH_WEB_TOKEN=$$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >> .env; added="$$added WEB_TOKEN"; }; \
	touch .env; [ -z "$$added" ] || echo "wrote .env:$$added (the web chat token is BOTMESH_WEB_TOKEN in it; botctl's NATS password is BOTMESH_NATS_PASSWORD_BOTCTL)"

.PHONY: botctl
botctl: ## build bin/botctl (talks to a running environment)
	$(GO) build -o $(BIN)/ ./cmd/botctl

.PHONY: up
up: images .env botctl ## build the images and bin/botctl, start the whole environment and wait until it is healthy
	$(COMPOSE_SH) up

.PHONY: up-cluster
up-cluster: images .env botctl ## the same on a 3-node NATS cluster (docker-compose.cluster.yml)
	$(COMPOSE_SH) up --cluster

.PHONY: scale
scale: ## run ROUTERS routers and WEB web gateways (make scale ROUTERS=3 WEB=2)
	$(COMPOSE_SH) scale $(or $(ROUTERS),2) $(or $(WEB),1)

.PHONY: slack
slack: .env ## start the Slack gateway (BOTMESH_SLACK_APP_TOKEN and BOTMESH_SLACK_BOT_TOKEN in .env)
	$(COMPOSE_SH) slack

.PHONY: down
down: ## stop the environment and remove all its containers, networks and volumes (cluster's too)
	$(COMPOSE_SH) down

.PHONY: compose
compose: ## any compose command on the environment's files, e.g. make compose ARGS="logs router"
	$(COMPOSE_SH) run $(ARGS)

.PHONY: clean
clean:
	rm -rf $(BIN)
