# Shared by scripts/test and scripts/try-locally: installs the Python peers into virtualenvs
# under target/test-peers, on first use and whenever the pinned versions change: moto (the
# local AWS) with the AWS CLI, and schemathesis (the API against its OpenAPI document). The
# caller defines `say` and `die` and sets `peers`.

# The Python packages of the test peers, pinned.
python_peers="moto[server]==5.2.1 boto3==1.43.11 awscli==1.45.11"
# In a virtualenv of its own: its dependencies (jsonschema, werkzeug) are moto's too, at other
# versions.
schemathesis_version="schemathesis==4.32.5"

# ensure_venv DIR PACKAGES PROGRAM: the virtualenv DIR with PACKAGES (split on spaces) installed,
# made anew when PROGRAM is missing from it or the packages changed.
ensure_venv() {
  local venv="$1" packages="$2" program="$3"
  if [ ! -x "$venv/bin/$program" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$packages" ]; then
    say "installing $packages into $venv"
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
    "$venv/bin/pip" install --quiet --disable-pip-version-check $packages \
      || die "pip could not install $packages"
    echo "$packages" >"$venv/.requirements"
  fi
}

ensure_python_peers() {
  local venv="$peers/venv"
  ensure_venv "$venv" "$python_peers" moto_server
  "$venv/bin/python" "$(dirname "${BASH_SOURCE[0]}")/patch-moto.py" "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    || die "cannot patch moto in $venv"
  "$venv/bin/moto_server" --help >/dev/null 2>&1 || die "moto_server in $venv does not run"
  export BYOS_TEST_MOTO="$venv/bin/moto_server"
  export BYOS_TEST_AWS_CLI="$venv/bin/aws"
  say "moto: $BYOS_TEST_MOTO"
}

ensure_schemathesis() {
  local venv="$peers/schemathesis"
  ensure_venv "$venv" "$schemathesis_version" schemathesis
  "$venv/bin/schemathesis" --version >/dev/null 2>&1 || die "schemathesis in $venv does not run"
  export BYOS_TEST_SCHEMATHESIS="$venv/bin/schemathesis"
  say "schemathesis: $BYOS_TEST_SCHEMATHESIS"
}
