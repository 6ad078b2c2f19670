# silo: `make demo` to see it work, `make test` to check everything.
CARGO ?= cargo
SILO := $(CURDIR)/target/debug/silo
DEMO := $(CURDIR)/target/demo
DEMO_EVENTS := $(CURDIR)/target/demo-events
BATTLESCOPE := ingestion enrichment battles search notifications

.PHONY: demo demo-events demo-gateway fuzz-gateway bench-gateway test test-corpora prereqs fmt-check clippy offline-lint unit bench bench-lint bench-audit bench-manifest bench-events bench-backup bench-gateway-fairness clean-demo

## demo: build, provision and migrate the battlescope example on SQLite, show status and info
demo:
	@scripts/ensure-prereqs.sh --build
	$(CARGO) build --quiet -p silo-cli
	rm -rf $(DEMO)
	$(SILO) init --example battlescope --dir $(DEMO)
	cd $(DEMO) && $(SILO) up
	cd $(DEMO) && $(SILO) status
	cd $(DEMO) && $(SILO) migrate
	cd $(DEMO) && $(SILO) info

## demo-events: BattleScope's events end to end on a fresh folder: its five services and `silo events run`, then events per type, rows per store, and a check that every copy matches its source (BUS=nats for NATS JetStream at SILO_NATS_URL, ENGINE=postgres with SILO_PG_ADMIN_URL, FOLLOW=1 to run them side by side until quiet instead of in rounds)
demo-events:
	@scripts/ensure-prereqs.sh --build
	$(CARGO) build --quiet -p silo-cli $(addprefix -p battlescope-,$(BATTLESCOPE))
	@if [ -f $(DEMO_EVENTS)/silo.toml ]; then cd $(DEMO_EVENTS) && $(SILO) destroy --yes >/dev/null; fi
	rm -rf $(DEMO_EVENTS)
	SILO=$(SILO) scripts/demo-events.sh $(if $(BUS),--bus $(BUS)) $(if $(ENGINE),--engine $(ENGINE)) $(if $(FOLLOW),--follow) $(DEMO_EVENTS)

## demo-gateway: the D&D example (seed 003) on SQLite behind `silo gateway`, and curl showing a query, a write transaction, a schema migration and a refused cross-service request
demo-gateway:
	@scripts/ensure-prereqs.sh --build
	$(CARGO) build --quiet -p silo-cli
	SILO=$(SILO) scripts/demo-gateway.sh $(CURDIR)/target/demo-gateway

## fuzz-gateway: schemathesis (pinned, in a venv under target/) against the live gateway's /openapi.json: no 5xx, every response as documented
fuzz-gateway:
	@scripts/ensure-prereqs.sh --build
	$(CARGO) build --quiet -p silo-cli
	SILO=$(SILO) scripts/fuzz-gateway.sh

## test: prerequisites, formatting, lints, the linter's dependencies, then every test
test: prereqs fmt-check clippy offline-lint unit

prereqs:
	@scripts/ensure-prereqs.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

## offline-lint: fails when silo-lint depends on sqlx or tokio again
offline-lint:
	CARGO=$(CARGO) scripts/check-offline-lint.sh

unit:
	$(CARGO) test --workspace

## bench: `silo up` for 100 services against a createuser/createdb/psql loop; `silo migrate` against sqlx-cli
bench: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/up-vs-shell.sh
	@if command -v sqlx >/dev/null || [ -x $$HOME/.cargo/bin/sqlx ]; then bench/migrate-vs-sqlx.sh; \
	else echo "skipping migrate-vs-sqlx: install sqlx-cli (cargo install sqlx-cli --no-default-features --features postgres,rustls)"; fi

## bench-lint: `silo lint` against squawk on the lemmy corpus (pip install squawk-cli pglast)
bench-lint: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/lint-vs-squawk.sh

## bench-audit: `silo audit` on 100 provisioned services (10,000 pairs), default and --thorough; source-scan precision on the cargo registry
bench-audit: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/audit.sh
	bench/audit-scan-precision.sh

## bench-manifest: `silo status` and `silo lint` on manifests of 1k, 2k, 4k and 20k SQLite services (time per 1k services stays flat)
bench-manifest: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/manifest-scale.sh

## bench-events: `silo events run` throughput (1, 5 and 20 publishers) and latency at 1,000 events/s on the embedded and nats buses, PostgreSQL and SQLite, beside raw async-nats publishing (smaller: EVENTS=10000 RATE=500 SECS=5; BUSES, ENGINES, PUBLISHERS, MODES pick parts)
bench-events: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	$(CARGO) build --release --quiet -p silo-events --example nats_raw_publish
	bench/events.sh

## bench-backup: `silo backup`/`silo restore` against pg_dump -Fc/pg_restore on a 1 GB PostgreSQL store, `silo backup -j 5` against -j 1 on five stores, `silo backup` against sqlite3 .backup on a 1 GB SQLite store (smaller: SIZE_MB=200; PARTS, RUNS, JOBS_ENGINE pick parts)
bench-backup: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/backup.sh

## bench-gateway: the gateway on PostgreSQL (release build, wrk) against pgbench on the same database: single-row read by primary key, single-row write transaction, the seven D&D services at once (short runs: SECS=5)
bench-gateway: prereqs
	$(CARGO) build --release --quiet -p silo-cli
	bench/gateway.sh

## bench-gateway-fairness: one service's p95 at a steady rate, alone and while another floods the gateway (unlimited, then held by requests_per_second), on SQLite and PostgreSQL (SECS, QUIET_RPS, FLOOD, NOISY_RPS, ENGINES pick the load)
bench-gateway-fairness: prereqs
	$(CARGO) build --release --quiet -p silo-gateway --example fairness
	bench/gateway_fairness.sh

## clean-demo: drop the demos' stores and remove their folders; for a BUS=nats events demo also its JetStream stream (the server at SILO_NATS_URL must answer)
clean-demo:
	@if [ -f $(DEMO_EVENTS)/silo.toml ]; then cd $(DEMO_EVENTS) && $(SILO) destroy --yes >/dev/null; fi
	rm -rf $(DEMO) $(DEMO_EVENTS)

## test-corpora: the tests over real-world SQL in ../shared/corpora (or SILO_CORPORA); fails when it is missing
test-corpora: prereqs
	@dir="$${SILO_CORPORA:-$(CURDIR)/../shared/corpora}"; \
	  [ -d "$$dir/lemmy-migrations" ] && [ -d "$$dir/pg-regress-sql" ] || \
	  { echo "error: the corpora are not at $$dir: put ../shared beside the checkout or set SILO_CORPORA" >&2; exit 2; }
	$(CARGO) test --workspace --test corpora -- --ignored
