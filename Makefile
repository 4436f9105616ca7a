# Berth: `make run` builds and runs the mirror on its built-in defaults
# (listen :5000, admin API on 127.0.0.1:5001, data in ./berth-data, Docker
# Hub as the default upstream); `make test` installs what the tests drive
# (scripts/install-test-deps, as root) and runs every test, lint included.
# The only ways to run less are `make test-unit` (no end-to-end tests, no
# installs) and `make test BERTH_E2E=0` (the same).
GO       ?= go
BIN      := bin/berth
CONFIG   ?=
LISTEN   ?=
ADMIN_LISTEN ?=
PKGS     := ./...
# Packages without the end-to-end tests (test/...): run with -race.
UNIT      = $(shell $(GO) list ./... | grep -v /test/)
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

# berth version: stamped at link time, so it holds with -buildvcs=false too.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS    := -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildTime=$(BUILD_TIME)

.PHONY: all build run deps test test-unit test-e2e bench lint fuzz soak clean image

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

# make run LISTEN=127.0.0.1:5100 ADMIN_LISTEN=127.0.0.1:5101 CONFIG=my.yaml
run: build
	./$(BIN) serve $(if $(CONFIG),--config $(CONFIG)) $(if $(LISTEN),--listen $(LISTEN)) $(if $(ADMIN_LISTEN),--admin-listen $(ADMIN_LISTEN))

# image builds the container image (Dockerfile) with the local docker:
# scripts/image-context stages a static binary, the CA bundle and the
# default config, and the Dockerfile copies them into an empty image, so
# the build needs no registry. make image IMAGE=registry.example/berth:1.0
IMAGE  ?= berth:$(VERSION)
SOURCE ?= $(shell git config --get remote.origin.url 2>/dev/null)
image:
	LDFLAGS='$(LDFLAGS)' GO='$(GO)' scripts/image-context bin/image
	docker build -t $(IMAGE) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg CREATED=$(BUILD_TIME) --build-arg SOURCE=$(SOURCE) bin/image

# deps installs the clients and programs the tests drive (a no-op when they
# are there); .ci/run gets them the same way, through make test.
deps:
	scripts/install-test-deps

# Unit and package tests run with the race detector; end-to-end tests start
# real processes (berth, containerd, dockerd, skopeo, the OCI conformance
# suite) and run without it. testsum prints what go test prints plus the
# skipped tests, ends with "N passed, N failed, N skipped", and keeps the
# whole test2json stream in bin/test.json.
TESTSUM   = mkdir -p bin && $(GO) run ./internal/cmd/testsum -json bin/test.json --
UNIT_TEST = $(GO) test -race -json -count=1 -timeout 15m $(UNIT) :: $(STORE_ENCRYPTED)
# The store's tests once more with encryption at rest on (store/main_test.go),
# but for the one that sets up plaintext and encrypted stores itself.
STORE_ENCRYPTED = $(GO) test -race -json -count=1 -skip '^TestEncryptionMixedStore$$' ./store/ -args -encrypt=all
E2E_TEST  = $(GO) test -json -count=1 -timeout 20m ./test/...

# Every fuzz target (scripts/fuzz-targets: ./PKG/:FuzzName). make test
# fuzzes each for FUZZTIME_SHORT; make fuzz for FUZZTIME. A failing input
# is written to the package's testdata/fuzz, where go test replays it.
FUZZ_TARGETS   = $(shell scripts/fuzz-targets)
FUZZTIME       ?= 2m
# A count, not a duration: Go 1.26's fuzz coordinator can report a bare
# "context deadline exceeded" failure when a duration ends while a worker
# is busy on a loaded machine (fixed in Go 1.27); a count has no deadline.
FUZZTIME_SHORT ?= 50000x
fuzz_pkg  = $(firstword $(subst :, ,$(1)))
fuzz_name = $(lastword $(subst :, ,$(1)))
FUZZ_TEST = $(foreach t,$(FUZZ_TARGETS),:: $(GO) test -json -run '^$$' -fuzz '^$(call fuzz_name,$(t))$$' -fuzztime $(FUZZTIME_SHORT) $(call fuzz_pkg,$(t)))

ifeq ($(BERTH_E2E),0)
test: test-unit
else
test: deps lint
	$(TESTSUM) $(UNIT_TEST) $(FUZZ_TEST) :: $(E2E_TEST)
endif

test-unit: lint
	$(TESTSUM) $(UNIT_TEST) $(FUZZ_TEST)

test-e2e: deps
	$(TESTSUM) $(E2E_TEST)

# The benchmark harness (test/bench): Berth against a plain sendfile server
# and the upstream served directly, on this machine, all on 127.0.0.1; it
# runs the store benchmarks too and rewrites docs/benchmarks.md (< 14 min).
# bench-smoke runs every scenario with tiny sizes (~10 s) and writes nothing.
# Both compare Berth with Distribution in proxy mode too; install-bench-deps
# installs it (go install, once) and the bench fails naming the fix without it.
bench:
	scripts/install-bench-deps
	$(GO) run ./test/bench -out docs/benchmarks.md

.PHONY: bench-smoke
bench-smoke:
	scripts/install-bench-deps
	$(GO) run ./test/bench -smoke

# gofmt, go vet, go mod tidy and, when it is installed (make deps installs
# it), staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed (run gofmt -w on them):"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags soak ./test/soak/
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@if command -v staticcheck >/dev/null 2>&1; then echo staticcheck $(PKGS); staticcheck $(PKGS); staticcheck -tags soak ./test/soak/; \
	else echo "staticcheck not installed (make deps installs it); skipped"; fi

# make fuzz FUZZTIME=10m: every fuzz target for FUZZTIME each (2m: ~20 min).
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $$t for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

# The soak test (test/soak, build tag soak, so make test never builds it):
# a node in process under -race, with a real upstream, for SOAK_DURATION of
# concurrent pushes, pulls, deletes, GC, eviction and reloads.
SOAK_DURATION ?= 2m
soak:
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -tags soak -race -count=1 -v -timeout 2h -run TestSoak ./test/soak/

clean:
	rm -rf bin
