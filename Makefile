# vesalius — a thin wrapper around CMake. `make demo` and `make test` are the two commands a
# new user runs; both first install missing Debian packages (as root) or print the exact
# apt-get line (otherwise, exit 2).

# Every Debian package the build, the tests and the benchmarks need (Debian 12). orthanc, curl,
# iproute2 and openssl serve the PACS tests, which start their own Orthanc in a private network
# namespace: installing it must not start (or enable) its service, hence the policy-rc.d below.
PACKAGES := cmake make gcc g++ pkg-config git ca-certificates \
  libdcmtk-dev dcmtk libinsighttoolkit5-dev libgdcm-dev libhdf5-dev libopenblas-dev \
  zlib1g-dev libdeflate-dev libssl-dev libsqlite3-dev libyaml-dev libsodium-dev libpng-dev libopenjp2-7-dev \
  libcmocka-dev clang clang-format libclang-rt-14-dev libomp-14-dev \
  python3 python3-numpy python3-pydicom python3-pil python3-nibabel python3-h5py python3-sklearn \
  python3-torch dcm2niix pigz chromium \
  orthanc curl sqlite3 iproute2 util-linux openssl valgrind \
  libopenmpi-dev openmpi-bin
# qemu-user lets tests/oracle/test_shard_deflate_paths.sh check that shard chunks are the same
# bytes on other x86-64 CPU models (libdeflate picks code paths by CPU features).
ARCH := $(shell dpkg --print-architecture 2>/dev/null)
ifeq ($(ARCH),amd64)
PACKAGES += qemu-user
endif

BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all build deps test unit fuzz demo sanitize clean

all: build

deps:
	@missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	line="apt-get install -y --no-install-recommends$$missing"; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "vesalius: installing missing Debian packages:$$missing"; \
	  prc=/usr/sbin/policy-rc.d; made=""; \
	  if [ ! -e $$prc ]; then printf '#!/bin/sh\nexit 101\n' >$$prc && chmod 755 $$prc && made=1; fi; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive $$line; rc=$$?; \
	  [ -z "$$made" ] || rm -f $$prc; \
	  [ $$rc = 0 ] || exit 1; \
	  case " $$missing " in *" orthanc "*) \
	    deb-systemd-helper disable orthanc.service >/dev/null 2>&1; \
	    update-rc.d orthanc disable >/dev/null 2>&1; \
	    echo "vesalius: orthanc installed for the PACS tests; its service is not started, nor enabled at boot";; \
	  esac; \
	else \
	  echo "vesalius: missing Debian packages; run as root:"; \
	  echo "apt-get update && $$line"; \
	  exit 2; \
	fi

# The package list, for tests/cli/test_packages.sh.
print-packages:
	@echo $(PACKAGES)

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The fast loop while editing: the unit tests alone (seconds). `make test` runs them too.
unit: deps build
	cd $(BUILD) && ctest -L unit --output-on-failure -j $(JOBS)

# Fuzzing the DICOM reader alone (its own clang build in $(BUILD)/fuzz; FUZZ_SECONDS, default
# 60). `make test` runs it too.
fuzz: deps build
	cd $(BUILD) && ctest -L fuzz --output-on-failure

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in its own folder.
sanitize: deps
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DVESALIUS_SANITIZE=ON"

# The demo: write the embedded cohort once (deterministic), then run the demo study; the report
# is build/demo/report/report.html. Rerunning does only what changed. The cohort: 200 unlabeled
# and 200 labeled volumes with the generator's defaults (tumours of 8-30 mm with a density relative
# to their organ, 20% subtle, cysts and vessels as lookalikes; studies/phantom.c). The split keeps
# 100 labeled volumes as the held-out test set. A cohort written with other options is replaced,
# with the demo's outputs.
DEMO_COHORT := --labeled 200
demo: deps build
	@if [ "$$(cat $(BUILD)/demo/cohort.options 2>/dev/null)" != "$(DEMO_COHORT)" ]; then \
	  rm -rf $(BUILD)/demo && mkdir -p $(BUILD)/demo && \
	  ./$(BUILD)/vesalius demo-cohort --out $(BUILD)/demo/cohort $(DEMO_COHORT) && \
	  echo "$(DEMO_COHORT)" >$(BUILD)/demo/cohort.options; fi
	@./$(BUILD)/vesalius run studies/demo/demo.yaml; rc=$$?; \
	  if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi

clean:
	rm -rf $(BUILD) build-asan
