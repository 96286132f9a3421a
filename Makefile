# The two commands a newcomer needs are `make run` and `make test`; each installs what it needs first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# Debian packages: WeasyPrint's runtime (libharfbuzz-subset0 makes it ~9x faster), file-type sniffing.
DEBIAN_RUNTIME := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fontconfig fonts-dejavu-core libmagic1
# Tests also drive Debian's Chromium (never a downloaded browser), read PDFs with poppler's pdftotext and
# read replies from a real Dovecot IMAP server.
DEBIAN_TEST := chromium poppler-utils dovecot-imapd
DEBIAN_PACKAGES ?= $(DEBIAN_RUNTIME)

.PHONY: install system-packages run test bench lint clean

install: system-packages $(VENV)/.installed

# Installs missing Debian packages when run as root; otherwise says what is missing and carries on.
system-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "Note: missing Debian packages (install them as root): $$missing"; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

run: export SITE_URL ?= http://127.0.0.1:$(PORT)
# Every email the demo sends lands in var/mail/ as a .eml file, openable in any mail client.
run: export EMAIL_DIRECTORY ?= var/mail
run: install
	@mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py seed_demo
	@echo "Serving on http://127.0.0.1:$(PORT)/  (admin: /admin/, health: /healthz). Ctrl-C stops it."
	@echo "Email is not sent: each message is written to $(EMAIL_DIRECTORY)/ as a .eml file."
	$(VENV)/bin/gunicorn config.wsgi:application --bind 127.0.0.1:$(PORT) --workers 2 --threads 4 \
	  --access-logfile - --graceful-timeout 5

test: DEBIAN_PACKAGES = $(DEBIAN_RUNTIME) $(DEBIAN_TEST)
test: install
	@mkdir -p var
	$(PY) manage.py check -v0
	$(PY) manage.py makemigrations --check --dry-run -v1
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/dispatch.py
	$(PY) benchmarks/portal.py
	$(PY) benchmarks/uploads.py

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis *.egg-info
