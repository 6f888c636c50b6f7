# Shared by scripts/test and scripts/try-locally: installs the Python peers (moto, the local
# AWS, and the AWS CLI) into a virtualenv under target/test-peers, on first use and whenever the
# pinned versions change. The caller defines `say` and `die` and sets `peers`.

# The Python packages of the test peers, pinned.
python_peers="moto[server]==5.2.1 boto3==1.43.11 awscli==1.45.11"

ensure_python_peers() {
  local venv="$peers/venv"
  if [ ! -x "$venv/bin/moto_server" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$python_peers" ]; then
    say "installing $python_peers into $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
      # Debian's python3 keeps venv in a package of its own.
      if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        say "installing Debian's python3-venv"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      fi
      rm -rf "$venv"
      python3 -m venv "$venv" || die "python3 -m venv failed: install Debian's python3-venv"
    fi
    # shellcheck disable=SC2086 # the list is split on purpose
    "$venv/bin/pip" install --quiet --disable-pip-version-check $python_peers \
      || die "pip could not install $python_peers"
    echo "$python_peers" >"$venv/.requirements"
  fi
  "$venv/bin/moto_server" --help >/dev/null 2>&1 || die "moto_server in $venv does not run"
  export BYOS_TEST_MOTO="$venv/bin/moto_server"
  export BYOS_TEST_AWS_CLI="$venv/bin/aws"
  say "moto: $BYOS_TEST_MOTO"
}

# schemathesis, which tests the API against its OpenAPI document: a virtualenv of its own, since
# its dependencies (jsonschema, werkzeug) are moto's too, at other versions.
schemathesis_version="schemathesis==4.32.5"

ensure_schemathesis() {
  local venv="$peers/schemathesis"
  if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$schemathesis_version" ]; then
    say "installing $schemathesis_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv failed: install Debian's python3-venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$schemathesis_version" \
      || die "pip could not install $schemathesis_version"
    echo "$schemathesis_version" >"$venv/.requirements"
  fi
  "$venv/bin/schemathesis" --version >/dev/null 2>&1 || die "schemathesis in $venv does not run"
  export BYOS_TEST_SCHEMATHESIS="$venv/bin/schemathesis"
  say "schemathesis: $BYOS_TEST_SCHEMATHESIS"
}
