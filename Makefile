# Set-up and the two entry points (see README). Everything lands in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install sshd clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first: a looser requirement would pull several GB of CUDA packages.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,distributed]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rcai pipeline --out runs/demo

# tests/test_ssh.py starts a real OpenSSH server on 127.0.0.1: install it where we may (root + apt),
# else those tests skip and say why.
sshd:
	@test -x /usr/sbin/sshd || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null \
	  || echo "note: could not install openssh-server: the ssh tests will skip"; \
	else echo "note: openssh-server missing (needs root + apt-get): the ssh tests will skip"; fi; }

test: $(STAMP) sshd
	$(BIN)/python -m pytest -q -n 2 --durations=15

clean:
	rm -rf $(VENV) runs .pytest_cache
