# relay's developer commands. `make help` lists them. The README's two
# commands are deploy/local/run.sh and deploy/local/test.sh; these targets wrap them.

# What "relay version" prints: the tag (v0.1.0, or v0.1.0-3-g4f1c2e9 past
# it), the commit and the build time.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  = -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# The one build recipe; the Dockerfile runs the same line.
GOBUILD = CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)"

.PHONY: help build run test test/race fuzz rules/test bench/ingest bench/history bench/latency bench/memory bench/ucwa lint fmt db/reset migrate/new docker

help: ## list the targets
	@grep -hE '^[a-z/]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/relay and bin/ucwa-sim
	$(GOBUILD) -o bin/relay ./cmd/relay
	$(GOBUILD) -o bin/ucwa-sim ./cmd/ucwa-sim

run: ## run relay with PostgreSQL and the UCWA simulator (README command 1)
	./deploy/local/run.sh

test: ## run every test against a throwaway PostgreSQL (README command 2)
	./deploy/local/test.sh

test/race: test ## the test command already uses the race detector

fuzz: ## run each fuzz target for 20 s, as CI does (FUZZTIME=5m for longer)
	./.ci/fuzz.sh

rules/test: ## check and unit-test the Prometheus rules (builds the pinned promtool once)
	./deploy/prometheus/promtool.sh check rules deploy/prometheus/relay-rules.yml
	./deploy/prometheus/promtool.sh test rules deploy/prometheus/relay-rules.test.yml

bench/ingest: ## ingest load benchmark against pgbench (1, 8, 32 senders)
	./deploy/local/bench-ingest.sh

bench/history: ## what 5 million rows of history cost: ingest, scrape, claim-to-finish, retention sweep
	./deploy/bench/history.sh

bench/memory: ## relay's memory under 150 concurrent 1 MiB webhooks (answers and storage checked)
	./deploy/local/bench-memory.sh burst 150

bench/latency: ## webhook -> message at the simulator, open loop at 200/s, 3 runs of 30 s
	./deploy/bench/latency.sh

bench/ucwa: ## UCWA client throughput and failover benchmarks against the simulator
	go test -run '^$$' -bench . -benchtime 3s ./relay/deliver/ucwa/

lint: ## gofmt, go vet and staticcheck (builds the pinned staticcheck once)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...
	./.ci/staticcheck.sh

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

db/reset: ## drop and re-create the development database
	./deploy/local/postgres.sh stop $${TMPDIR:-/tmp}/relay-dev/pg; rm -rf $${TMPDIR:-/tmp}/relay-dev/pg

migrate/new: ## create the next migration pair: make migrate/new NAME=verb_noun
	@test -n "$(NAME)" || (echo "usage: make migrate/new NAME=verb_noun"; exit 2)
	@n=$$(ls migrations/*.up.sql | sed -E 's|.*/0*([0-9]+)_.*|\1|' | sort -n | tail -1); \
	 next=$$(printf '%06d' $$((n + 1))); \
	 printf -- '-- TODO: describe the change.\nBEGIN;\n\nCOMMIT;\n' > migrations/$${next}_$(NAME).up.sql; \
	 printf -- '-- Reverts $${next}_$(NAME).\nBEGIN;\n\nCOMMIT;\n' > migrations/$${next}_$(NAME).down.sql; \
	 echo migrations/$${next}_$(NAME).{up,down}.sql

docker: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t relay:$(VERSION) .
