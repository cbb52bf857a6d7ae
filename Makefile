# Berth: `make run` brings everything up on a fresh Debian machine; `make test` runs the suite.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the engine, the tests and the dashboard need (socat and openssl: bench/move.py's relayed floor).
APT_PACKAGES := redis-server busybox-static runc crun skopeo umoci iproute2 libseccomp2 gcc libc6-dev \
	conmon catatonit zstd debootstrap chromium python3-venv procps psmisc \
	e2fsprogs mount netavark aardvark-dns nftables iptables docker-registry podman buildah iperf3 postgresql \
	socat openssl

.PHONY: install apt venv npm pyc run agent test test-e2e-sqlite test-e2e-postgres test-fast fuzz soak lint images clean

install: apt venv npm pyc

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	@# Console commands `berth` and `berth-runtime`, run from this checkout.
	printf '#!/bin/sh\nPYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" exec "$(CURDIR)/$(BIN)/python" -m workers.engine "$$@"\n' > $(BIN)/berth
	printf '#!/bin/sh\nexec "$(CURDIR)/$(BIN)/python" -S "$(CURDIR)/workers/engine/runtime/__main__.py" "$$@"\n' > $(BIN)/berth-runtime
	chmod +x $(BIN)/berth $(BIN)/berth-runtime
	touch $@

# Byte-compile the engine: the runtime CLI is started per container, and without
# cached bytecode every call pays ~40 ms of compilation.
pyc: venv
	@PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q workers webapp containers >/dev/null

venv: $(VENV)/.installed

npm:
	@if [ -f package.json ]; then \
	  command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null; }; \
	  if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then npm install --no-audit --no-fund --loglevel=error && touch node_modules; fi; \
	fi

run: install
	$(BIN)/python manage.py berth_run

# Join this machine to a control plane as a host (README: "Join a second machine"). The token goes to
# berth_agent in its environment, not on its command line; @ keeps make from echoing it and the passwords.
agent: install
	@if [ -z "$(CONTROL_REDIS)" ] || [ -z "$(DATABASE_URL)" ] || [ -z "$(JOIN_TOKEN)" ]; then \
	  echo "make agent needs CONTROL_REDIS, DATABASE_URL and JOIN_TOKEN (HOST_NAME and LABELS optional)"; exit 2; fi
	@BERTH_JOIN_TOKEN="$(JOIN_TOKEN)" $(BIN)/python manage.py berth_agent --control-redis "$(CONTROL_REDIS)" \
	  --database "$(DATABASE_URL)" $(if $(HOST_NAME),--name "$(HOST_NAME)") $(if $(LABELS),--labels "$(LABELS)")

# The same answer on every run: fuzzers run a fixed, seeded, derandomized amount here. The end-to-end part
# (real workers, web servers, browsers: `-m e2e`) runs against a private PostgreSQL server its fixture starts
# (BERTH_TEST_DB=postgres, tests/postgres.py), the rest on SQLite; both parts run even if the first fails.
test: install
	@rc=0; $(BIN)/python -m pytest -m "not e2e" || rc=$$?; \
	BERTH_TEST_DB=postgres $(BIN)/python -m pytest -m e2e || rc=$$?; exit $$rc

# The end-to-end part alone, on SQLite (what `make run` uses on one machine) or on PostgreSQL.
test-e2e-sqlite: install
	$(BIN)/python -m pytest -m e2e

test-e2e-postgres: install
	BERTH_TEST_DB=postgres $(BIN)/python -m pytest -m e2e

# Without the end-to-end and browser tests (no workers, no live servers, no Chromium).
test-fast: install
	$(BIN)/python -m pytest -m "not e2e and not browser"

# Longer fuzzing with fresh randomness (the seed is printed; BERTH_FUZZ_SEED=<n> replays a schemathesis
# run, hypothesis prints a @reproduce_failure blob; BERTH_FUZZ_SCALE=0.1 for a shorter run).
fuzz: install
	BERTH_FUZZ=1 $(BIN)/python -m pytest tests/engine/images/test_fuzz.py tests/api/test_api_schemathesis.py \
		--timeout=10800 -rA

# Opt-in, never in `make test`: random lifecycle actions on 50 containers with an invariant check every minute
# (tests/soak.py; the seed is printed, SOAK_ARGS="--seed N" replays it, SOAK_ARGS="--minutes 3" for a short run).
soak: install
	$(BIN)/python tests/soak.py $(SOAK_ARGS)

lint: venv
	$(BIN)/ruff check .

images: install
	$(BIN)/python -m workers.engine images --debian

clean:
	rm -rf $(VENV) node_modules
