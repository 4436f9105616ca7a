# Berth: `make run` builds and runs the mirror on its built-in defaults
# (listen :5000, data in ./berth-data, Docker Hub as the default upstream);
# `make test` runs every test. .ci/run installs the clients the end-to-end
# tests drive (containerd, dockerd, skopeo) and then runs `make test`.
GO       ?= go
BIN      := bin/berth
CONFIG   ?=
PKGS     := ./...

.PHONY: all build run test test-unit test-e2e bench lint fuzz clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/berth

run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG))

# Unit and package tests run with the race detector; end-to-end tests start
# real processes (berth, containerd, dockerd, skopeo) and run without it.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v /test/)
	$(GO) test -count=1 -timeout 20m ./test/...

# The benchmark harness (test/bench): Berth against a plain sendfile server
# and the upstream served directly, on this machine, all on 127.0.0.1; it
# runs the store benchmarks too and rewrites docs/benchmarks.md (< 10 min).
# bench-smoke runs every scenario with tiny sizes (~10 s) and writes nothing.
bench:
	$(GO) run ./test/bench -out docs/benchmarks.md

.PHONY: bench-smoke
bench-smoke:
	$(GO) run ./test/bench -smoke

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz:
	$(GO) test ./registry/ -run '^$$' -fuzz FuzzParsePath -fuzztime 30s
	$(GO) test ./registry/ -run '^$$' -fuzz FuzzParseRange -fuzztime 30s

clean:
	rm -rf bin
