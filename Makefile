# migrate: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ESTATE ?= examples/estate

.PHONY: setup host images engine provider demo demo-down test lint unit bench schema clean

## setup: a virtualenv with migrate and its test tools (idempotent)
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), "migrate needs Python 3.11 to 3.13"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

## host: the Debian packages the sandbox and the tests need (as root; idempotent)
host:
	bash scripts/setup-host.sh

## images: the sandbox base images, built once with debootstrap and cached (as root)
images: setup host
	@if [ "$$(id -u)" -eq 0 ]; then $(BIN)/migrate sandbox images; \
	else echo "images: building the sandbox images needs root" >&2; exit 1; fi

## engine: the pinned Pulumi CLI built from the Go module proxy into ~/.cache/migrate (once)
engine: setup
	PATH="$$PATH:/usr/local/go/bin" $(BIN)/python -m migrate.adapters.engine build

## testcloud: an all-in-one OpenStack Zed in one nspawn machine on this host, for tests
## against a real cloud (as root; idempotent; `python -m migrate.rehearsal.testcloud down` removes it)
.PHONY: testcloud
testcloud: setup host
	nice -n 10 $(BIN)/python -m migrate.rehearsal.testcloud up

## testcloud-test: only the test cloud's tests (brings it up if it is not; `test` runs them too)
.PHONY: testcloud-test
testcloud-test: setup host
	MIGRATE_TESTCLOUD_TESTS=1 $(BIN)/python -m pytest tests/testcloud

## provider: the OpenStack resource plugin (Terraform bridge around terraform-provider-openstack)
## built from the Go module proxy into ~/.cache/migrate (once)
provider: setup
	PATH="$$PATH:/usr/local/go/bin" $(BIN)/python -m migrate.adapters.engine build-provider

## demo: set up, then move the example estate on the sandbox in one command (migrate run:
## census, plan, legacy server rooms and exchange platform, provisioning, transfer, register,
## cutover with verification, runbooks and the report), then show where each system stands
demo: setup host images engine
	$(BIN)/migrate run $(ESTATE) --yes
	$(BIN)/migrate status $(ESTATE)
	$(BIN)/migrate audit verify $(ESTATE)

## demo-down: remove what the demo made on this host (machines, bridges); keeps the state
demo-down: setup
	$(BIN)/migrate destroy $(ESTATE) --yes --leave-source-traces
	$(BIN)/migrate sandbox down $(ESTATE)

## test: set up, lint, then run every test (CI runs exactly this): the OpenStack test cloud
## comes up in the background while the other tests run, then its own tests run against it
test: setup host
	bash scripts/test.sh

lint: setup
	$(BIN)/ruff check .
	cd playbooks && ANSIBLE_HOME=$(CURDIR)/.ansible XDG_CACHE_HOME=$(CURDIR)/.ansible/cache \
	  PATH="$(CURDIR)/$(BIN):$$PATH" ansible-lint --profile production --offline *.yml roles

unit: setup
	$(BIN)/python -m pytest tests/unit

bench: setup
	$(BIN)/python bench/bench_estate.py

## schema: regenerate the shipped JSON Schemas and the manifest reference
schema: setup
	$(BIN)/migrate schema migrate/schemas
	$(BIN)/migrate schema --reference > docs/manifest-reference.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
