# Tandem: `make run` serves the gateway, `make test` runs every test.
# Both prepare what they need (PostgreSQL with pgvector, a local cluster in
# .data/pg unless DATABASE_URL is set) and are quick the second time.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go

.PHONY: run test bench bench-1m soak build vet fmt db deps clean-db

build:
	@$(GO) build -o bin/tandem ./cmd/tandem

run: build
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

bench: build
	@bash scripts/bench.sh

# Customers and agents through instance kills, socket drops and database
# restarts for SOAK_DURATION (3m); fails if anything acknowledged was lost.
soak: build
	@bash scripts/soak.sh

# Hybrid search over 1,000,000 chunks (and the bot's turn over them): too
# long to share make bench's 15 minutes (14 minutes on its own on 2 cores,
# 8 of them the HNSW build); its own block in docs/benchmarks.md. The HNSW
# build gets 8 GB of maintenance_work_mem.
bench-1m: build
	@BENCH_ONLY=search BENCH_BLOCK="make bench-1m" TANDEM_BENCH_SEARCH_CHUNKS=1000000 \
		TANDEM_BENCH_MAINTENANCE_WORK_MEM=8GB bash scripts/bench.sh

vet:
	@$(GO) vet ./...

fmt:
	@gofmt -w $$(git ls-files '*.go')

deps:
	@bash scripts/install-deps.sh

db: deps
	@bash scripts/pg.sh

# Stops the local cluster and deletes its data.
clean-db:
	@bash scripts/pg.sh stop || true
	@rm -rf .data/pg "$$(readlink -f .data/pg 2>/dev/null)"
