# federa — see README.md. Every target works from a clean clone.
GO       ?= go
BIN      := bin/federa
PKGS     := ./...

.PHONY: all build test race lint generate generate-check bench bench-table bench-wide demo e2e data bench-learning clean fuzz opa-test cosign spire chaos

all: build

build:
	$(GO) build -o $(BIN) ./cmd/federa

demo: build
	./$(BIN) demo

test: cosign spire
	$(GO) test -count=1 -timeout 15m $(PKGS)

race: cosign spire
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

# A real SPIRE server and agent (v1.13.3) for e2e/spire_test.go, built once
# from the Go module proxy through the tools module in tools/spire (the
# proxy refuses `go install …@v1.13.3`; first build about 10 minutes, cgo).
SPIRE_VERSION := 1.13.3
SPIRE_BIN     := $(CURDIR)/.cache/bin
spire:
	@if $(SPIRE_BIN)/spire-server --version 2>&1 | grep -q '^$(SPIRE_VERSION)' && [ -x $(SPIRE_BIN)/spire-agent ]; then \
	  echo "SPIRE $(SPIRE_VERSION) is built: $(SPIRE_BIN)"; \
	else \
	  echo "building SPIRE $(SPIRE_VERSION) into $(SPIRE_BIN) (first time: about 10 minutes)"; \
	  cd tools/spire && GOBIN=$(SPIRE_BIN) $(GO) install github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent; \
	fi

# The real cosign CLI checks our release bundles (attest/sign/cosign_test.go).
# Built once from the module proxy into a git-ignored folder (first time:
# 5-10 minutes; then seconds).
COSIGN_VERSION := v2.6.5
COSIGN_BIN     := $(CURDIR)/.cache/bin/cosign
cosign:
	@if $(COSIGN_BIN) version 2>/dev/null | grep -q 'GitVersion: *$(COSIGN_VERSION)$$'; then \
	  echo "cosign $(COSIGN_VERSION) is built: $(COSIGN_BIN)"; \
	else \
	  echo "building cosign $(COSIGN_VERSION) into $(COSIGN_BIN) (first time: 5-10 minutes)"; \
	  GOBIN=$(dir $(COSIGN_BIN)) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION); \
	fi

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzLoadCSV -fuzztime 20000x ./dataset/
	$(GO) test -run '^$$' -fuzz FuzzLoadIDX -fuzztime 20000x ./dataset/
	$(GO) test -run '^$$' -fuzz FuzzReadSafetensors -fuzztime 20000x ./models/
	$(GO) test -run '^$$' -fuzz FuzzParseJobSpec -fuzztime 20000x ./spec/
	$(GO) test -run '^$$' -fuzz FuzzParseQuery -fuzztime 20000x ./analytics/
	$(GO) test -run '^$$' -fuzz FuzzAssembler -fuzztime 20000x ./transfer/
	$(GO) test -run '^$$' -fuzz FuzzReassembler -fuzztime 20000x ./transfer/
	$(GO) test -run '^$$' -fuzz FuzzDecodeChunkMessage -fuzztime 20000x ./transfer/
	$(GO) test -run '^$$' -fuzz FuzzColumnName -fuzztime 2000x ./site/
	$(GO) test -run '^$$' -fuzz FuzzInput -fuzztime 20000x ./policy/
	$(GO) test -run '^$$' -fuzz FuzzDecision -fuzztime 20000x ./policy/
	$(GO) test -run '^$$' -fuzz FuzzParseEntry -fuzztime 20000x ./attest/auditlog/
	$(GO) test -run '^$$' -fuzz FuzzCheckpoint -fuzztime 20000x ./attest/auditlog/
	$(GO) test -run '^$$' -fuzz FuzzVerifyBlob -fuzztime 20000x ./attest/sign/
	$(GO) test -run '^$$' -fuzz FuzzParquet -fuzztime 20000x -parallel 1 ./dataset/
	$(GO) test -run '^$$' -fuzz FuzzLoadFile -fuzztime 20000x -parallel 1 ./coordinator/
	$(GO) test -run '^$$' -fuzz FuzzSiteMessages -fuzztime 20000x -parallel 1 ./coordinator/
	$(GO) test -run '^$$' -fuzz FuzzLoadFile -fuzztime 20000x -parallel 1 ./site/
	$(GO) test -run '^$$' -fuzz FuzzTask -fuzztime 20000x -parallel 1 ./site/
	$(GO) test -run '^$$' -fuzz FuzzUnpack -fuzztime 20000x -parallel 1 ./secagg/
	$(GO) test -run '^$$' -fuzz FuzzServer -fuzztime 5000x -parallel 1 ./secagg/
	$(GO) test -run '^$$' -fuzz FuzzClient -fuzztime 5000x -parallel 1 ./secagg/
	$(GO) test -run '^$$' -fuzz 'FuzzDecode$$' -fuzztime 20000x -parallel 1 ./secagg/updates/
	$(GO) test -run '^$$' -fuzz FuzzDPDecode -fuzztime 20000x -parallel 1 ./secagg/updates/
	$(GO) test -run '^$$' -fuzz FuzzRingAssembler -fuzztime 20000x -parallel 1 ./proto/federav1/
	$(GO) test -run '^$$' -fuzz FuzzMergePartials -fuzztime 20000x -parallel 1 ./analytics/

# The default policy passes the real OPA CLI of the version in go.mod,
# unchanged (the first run builds OPA: about a minute).
OPA := $(GO) run github.com/open-policy-agent/opa@v1.22.3
opa-test:
	$(OPA) test -v policy/default
	$(OPA) test -v policy/access
	$(OPA) check --strict policy/default policy/packs policy/access
	$(OPA) fmt --list --fail policy/default policy/access

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./coordinator/... | grep -E 'federa/site' ); \
	  if [ -n "$$bad" ]; then echo "layering: coordinator/ imports site/: $$bad"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./site/... | grep -E 'federa/coordinator' ); \
	  if [ -n "$$bad" ]; then echo "layering: site/ imports coordinator/: $$bad"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./proto/... | grep -E 'federa/(models|transfer|coordinator|site|sim)\b' ); \
	  if [ -n "$$bad" ]; then echo "layering: the wire package imports a package above it: $$bad"; exit 1; fi
	@bad=$$($(GO) list -f '{{.ImportPath}}: {{join .Imports " "}}' ./coordinator/... ./site/... | grep -E 'federa/sim\b' ); \
	  if [ -n "$$bad" ]; then echo "layering: coordinator/ or site/ imports sim/ (the in-process federation sits above them): $$bad"; exit 1; fi
	@echo lint ok

generate:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc \
	  --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
	  --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
	  --go_out=. --go_opt=module=github.com/federa-dev/federa \
	  --go-grpc_out=. --go-grpc_opt=module=github.com/federa-dev/federa \
	  -I proto proto/federa/v1/federa.proto

generate-check: generate
	@git diff --exit-code -- proto/ || (echo "generated code is stale: run make generate and commit"; exit 1)
	@test -z "$$(git status --porcelain -- proto/)" || (git status --porcelain -- proto/; echo "generated code is not committed"; exit 1)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 -timeout 60m ./models/ ./policy/ ./attest/auditlog/ ./sim/ ./dataset/ ./site/ ./secagg/ | tee bench.out

# README's goals table and docs/benchmarks.md, from bench.out (make bench).
bench-table:
	$(GO) run ./scripts/bench-table -in bench.out

# A job over 500,000 columns through its statistics phase and one round
# (sim/wide_test.go; make test runs it at 40,000 columns of 100-byte
# names). About 15 minutes and 3 GB on 2 loaded cores: the sites' policy
# evaluations, linear in the columns, take most of it (docs/scale.md).
WIDE_COLUMNS ?= 500000
bench-wide:
	FEDERA_WIDE_COLUMNS=$(WIDE_COLUMNS) $(GO) test -count=1 -timeout 70m -v -run '^TestWideStatsPhase$$' ./sim/ | grep -E 'wide_test|^(---|ok|FAIL|PASS)'

e2e: build
	./$(BIN) demo --output json

# The fault scenarios of chaos/ (docs/reliability.md) in their long form: 50
# coordinator kill -9 trials (make test runs 5), 10 passes of the kills at
# failpoints (make test runs 1), 10 site kills, and the slow link with a 50 MB
# model. Needs root (network namespaces, tmpfs) and
# iproute2. Set FEDERA_CHAOS_SEED to replay a run's random points.
CHAOS_TRIALS ?= 50
chaos:
	FEDERA_CHAOS_REQUIRED=1 FEDERA_CHAOS_TRIALS=$(CHAOS_TRIALS) FEDERA_CHAOS_BIG=1 $(GO) test -count=1 -timeout 60m -v -run . ./chaos/

# Fashion-MNIST (testdata/README.md) from Debian's dataset-fashion-mnist,
# split into ten label-skewed sites under data/fashion-mnist/ (git-ignored;
# the demo's small data sets are committed under testdata/).
FMNIST_DEB := .cache/data/deb
FMNIST_IN  := $(FMNIST_DEB)/usr/share/datasets/fashion-mnist
data:
	@if [ ! -f $(FMNIST_IN)/train-images-idx3-ubyte.gz ]; then \
	  mkdir -p $(FMNIST_DEB) && cd .cache/data && \
	  { apt-get download dataset-fashion-mnist || { apt-get update && apt-get download dataset-fashion-mnist; }; } && \
	  dpkg -x dataset-fashion-mnist_*_all.deb deb; \
	fi
	$(GO) run ./scripts/split-idx --in $(FMNIST_IN) --out data/fashion-mnist --seed 2017 --alpha 0.5

# A federated MLP 784-100-10 over the ten Fashion-MNIST sites, accuracy per
# round and wall time, beside the same MLP trained centrally (and sklearn's,
# if /usr/bin/python3 has it). Pass flags with ARGS, e.g. ARGS='-o json'.
bench-learning: data
	$(GO) run ./scripts/bench-learning $(ARGS)

clean:
	rm -rf bin bench.out
