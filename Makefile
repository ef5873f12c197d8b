# authproxy: build, test and benchmark. `make test` is what CI runs.
GO ?= go

.PHONY: build test deps check test-product test-integration test-integration-grpc test-node test-container bench bench-rowsecurity fake fuzz

build:
	$(GO) build -o bin/authproxy ./cmd/authproxy

# Everything: formatting and vet of both modules, the product's unit tests,
# the integration tests (real binary, Milvus Go SDK, curl, headless Chromium)
# on both forwarding cores, the Node SDK walk and, last, the container image
# and the examples run with podman (as root). deps installs, as root with
# apt-get, what the tests start on loopback when it is missing.
test: deps check test-product test-integration test-integration-grpc test-node test-container

deps:
	test/deps.sh

check:
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: the files above need formatting" >&2; exit 1)
	$(GO) vet ./...
	cd test && $(GO) vet ./... && $(GO) vet -tags container ./container/

test-product:
	$(GO) test -count=1 ./...

test-integration:
	cd test && $(GO) test -count=1 -timeout 15m ./...

# The integration suite again with every proxy on the grpc core
# (forwarding: grpc); the run above is on the default, the frame relay.
test-integration-grpc:
	cd test && AUTHPROXY_FORWARDING=grpc $(GO) test -count=1 -timeout 15m ./integration

# The Node SDK walk runs bin/authproxy in front of bin/fakemilvus.
test-node: build
	cd test && $(GO) build -o ../bin/fakemilvus ./cmd/fakemilvus
	cd test/node && npm ci --no-audit --no-fund --loglevel=error && node --test

# The Dockerfile built unchanged on stand-in bases and run with podman, the
# Kubernetes sidecar example with podman kube play and the compose example with
# podman-compose (as root; installs buildah/podman/podman-compose/debootstrap
# with apt-get): see test/container/run.sh.
test-container:
	PATH="$$PATH:$$($(GO) env GOROOT)/bin" test/container/run.sh

# Every fuzz target for FUZZTIME each, one after the other (go test -fuzz
# takes one target per run); findings land in the package's
# testdata/fuzz/<target>/, which `make test` (go test) runs ever after.
FUZZTIME ?= 30s
fuzz:
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./test/' | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -c6-); do \
	    echo "fuzz $$dir $$target for $(FUZZTIME)"; \
	    $(CURDIR)/test/fuzzone.sh "$(GO)" $$dir $$target $(FUZZTIME); \
	  done; \
	done
	@# The test module's targets (fakemilvus's differential FuzzCombinedFilter).
	@set -e; cd test && for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -c6-); do \
	    echo "fuzz test/$$dir $$target for $(FUZZTIME)"; \
	    $(CURDIR)/test/fuzzone.sh "$(GO)" $$dir $$target $(FUZZTIME); \
	  done; \
	done

# The side-by-side benchmark (authproxy, direct, nginx): see bench/README.md.
bench:
	bench/run.sh

# A read under one row policy against the same read without one, through
# the real binary (grpc core): reports policy/plain, the goal is <= 1.05.
bench-rowsecurity: build
	cd test && $(GO) test -run '^$$' -bench BenchmarkRowSecurityQuery -benchtime 3000x -count 3 ./integration

# A fake Milvus on 127.0.0.1:19540 to try the proxy without Milvus.
fake:
	cd test && $(GO) run ./cmd/fakemilvus --listen 127.0.0.1:19540
