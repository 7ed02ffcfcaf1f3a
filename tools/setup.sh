#!/bin/sh
# Installs everything a fresh Debian 12 machine needs to build and test this
# project, from Debian's archive only. Safe to run again: apt skips what is there.
set -eu
PACKAGES="bazel-bootstrap bazel-bootstrap-source bazel-platforms g++ \
  libabsl-dev libprotobuf-dev protobuf-compiler librange-v3-dev libcap-dev \
  libnl-3-dev libnl-route-3-dev libnl-genl-3-dev libboost-test-dev \
  criu python3-protobuf"
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing:$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
else
  echo "setup: all packages present"
fi
