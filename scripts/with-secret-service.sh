#!/bin/sh
# Runs a command where a real, unlocked Secret Service (the Linux OS keychain) is reachable,
# so that tests of main/security/keychain.ts talk to the real thing, headless or not:
#
#   sh scripts/with-secret-service.sh npx vitest run test/unit/keychain.test.ts
#
# - A Secret Service is already on the session bus (a desktop login, or a run inside this
#   script): the command runs as it is. SIPNOTE_PRIVATE_KEYRING=1 skips this check and always
#   uses a private, throw-away keyring (keeps test entries out of your desktop keyring).
# - Not on Linux: the command runs as it is (macOS Keychain, Windows Credential Manager).
# - Otherwise: a private D-Bus session (dbus-run-session) with a fresh temporary HOME and XDG
#   directories, gnome-keyring-daemon unlocked there with a test password given on stdin (it
#   creates and unlocks a default "login" collection), DISPLAY unset (a locked keyring with a
#   display opens an unlock dialog and hangs; see ../shared/notes/crypto.md §1), then the
#   command. When it ends, the bus, the keyring daemon and the temporary directory go too.
#   SIGINT/SIGTERM/SIGHUP sent to this script are passed on to the command.
#
# Exit status: the command's. Needs dbus-daemon (dbus-run-session, dbus-send) and
# gnome-keyring; without them the command still runs, after a warning, and the keychain tests
# skip (or fail under CI=true).
set -u

if [ "$#" -eq 0 ]; then
  echo "usage: sh scripts/with-secret-service.sh COMMAND [ARG...]" >&2
  exit 2
fi

say() { echo "with-secret-service: $*" >&2; }

# Is org.freedesktop.secrets owned on the session bus we were given? DISPLAY is hidden from
# dbus-send so that a missing bus is not "autolaunched" (which would leave a daemon behind).
secret_service_running() {
  command -v dbus-send >/dev/null 2>&1 || return 1
  env -u DISPLAY dbus-send --session --print-reply --reply-timeout=2000 --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
    grep -q 'boolean true'
}

if [ "$(uname -s)" != Linux ]; then
  exec "$@"
fi
if [ "${SIPNOTE_PRIVATE_KEYRING:-}" != 1 ] && secret_service_running; then
  exec "$@"
fi
for tool in dbus-run-session gnome-keyring-daemon; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "$tool not found (Debian: apt-get install dbus-daemon gnome-keyring); running without a Secret Service"
    exec "$@"
  fi
done

# npm/npx inside keep the real cache and skip the update check a fresh HOME would trigger.
export npm_config_cache="${npm_config_cache:-${HOME:-/tmp}/.npm}" npm_config_update_notifier=false
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sipnote-keyring.XXXXXX") || exit 1
mkdir -m 700 "$tmp/home" "$tmp/data" "$tmp/config" "$tmp/cache" "$tmp/runtime" || exit 1
export HOME="$tmp/home" XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config" \
  XDG_CACHE_HOME="$tmp/cache" XDG_RUNTIME_DIR="$tmp/runtime" SIPNOTE_KEYRING_DIR="$tmp"
unset DISPLAY WAYLAND_DISPLAY DBUS_SESSION_BUS_ADDRESS GNOME_KEYRING_CONTROL

# Inside the private session: unlock the keyring, wait until it owns its bus name, note the
# PIDs of the daemon and of the command, then become the command.
# shellcheck disable=SC2016 # expanded by the inner shell
inner='
  printf "%s" "${SIPNOTE_TEST_KEYRING_PASSWORD:-sipnote-test}" |
    gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>"$SIPNOTE_KEYRING_DIR/keyring.log" || {
      echo "with-secret-service: gnome-keyring-daemon --unlock failed:" >&2
      cat "$SIPNOTE_KEYRING_DIR/keyring.log" >&2
      exit 125
    }
  if command -v dbus-send >/dev/null 2>&1; then
    tries=0
    until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; do
      tries=$((tries + 1))
      if [ "$tries" -gt 200 ]; then echo "with-secret-service: the keyring did not appear on the bus" >&2; exit 125; fi
      sleep 0.05
    done
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null |
      sed -n "s/^ *uint32 \([0-9][0-9]*\).*/\1/p" >"$SIPNOTE_KEYRING_DIR/keyring.pid"
  fi
  echo "$$" >"$SIPNOTE_KEYRING_DIR/command.pid"
  exec "$@"'

dbus-run-session -- sh -c "$inner" sh "$@" &
session=$!

# dbus-run-session dies on SIGTERM without stopping its children, so signals go to the command
# itself (by the PID it wrote); the session then ends as usual when the command exits.
forward() {
  interrupted=1
  target=$(cat "$tmp/command.pid" 2>/dev/null)
  kill -s "$1" "${target:-$session}" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward HUP' HUP

status=0
while :; do
  interrupted=0
  wait "$session"
  code=$?
  # 127: the session was already reaped by the previous wait (a signal raced its exit).
  if [ "$code" -ne 127 ] || [ "$status" -eq 0 ]; then status=$code; fi
  [ "$interrupted" = 1 ] || break
done
trap - INT TERM HUP

# gnome-keyring-daemon notices the end of the bus by itself; give it a moment, then stop it
# by its PID, so that nothing outlives this script and the directory can go.
# (A zombie counts as gone: in containers whose PID 1 does not reap, it stays one.)
running() {
  [ -r "/proc/$1/stat" ] || { kill -0 "$1" 2>/dev/null; return; }
  [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ] && kill -0 "$1" 2>/dev/null
}
keyring_pid=$(cat "$tmp/keyring.pid" 2>/dev/null)
if [ -n "$keyring_pid" ]; then
  tries=0
  while running "$keyring_pid" && [ "$tries" -lt 100 ]; do
    tries=$((tries + 1))
    sleep 0.05
  done
  kill -s TERM "$keyring_pid" 2>/dev/null || true
fi
rm -rf "$tmp"
exit "$status"
