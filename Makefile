# SPDX-License-Identifier: GPL-2.0-or-later
# Thin wrapper around meson/ninja: `make demo` and `make check` set everything up.
BUILD ?= build

.PHONY: all demo check bench soak clean install-deps

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

install-deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	@scripts/install-deps.sh
	./configure

demo: install-deps all
	python3 scripts/demo.py

check: install-deps all
	python3 scripts/run-tests.py $(BUILD)

bench: install-deps all
	python3 bench/run

# The fault campaign (docs/hardening.md): a few minutes, not part of check.
soak: install-deps all
	python3 scripts/soak.py --build $(BUILD) $(SOAK_ARGS)

clean:
	rm -rf $(BUILD)
