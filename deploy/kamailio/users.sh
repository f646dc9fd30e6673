#!/bin/sh
# Manage the users of sipnote's Kamailio server in its SQLite database.
#
#   users.sh DB init                              create DB from sqlite-init.sql (if new)
#   users.sh DB add USER PASSWORD DOMAIN          add a user, or change the password
#   users.sh DB add USER - DOMAIN                 the same, password read from stdin
#   users.sh DB remove USER DOMAIN                delete a user (and stored messages)
#   users.sh DB list                              list users (never passwords)
#
# DOMAIN must be the server's SIP_DOMAIN: it is also the digest realm that the stored
# hashes are bound to (kamailio.cfg challenges with realm = SIP_DOMAIN).
#
# Stored per user (Kamailio auth_db, table subscriber, version 7):
#   ha1         MD5(user:realm:password)             - default (algorithm MD5)
#   ha1b        MD5(user@domain:realm:password)      - for clients that send user@domain
#   ha1_sha256  SHA-256(user:realm:password)         - RFC 8760, cfg switch WITH_SHA256
#   password    empty, unless SIPNOTE_STORE_PLAINTEXT=1 (cfg WITH_PLAINTEXT_PASSWORDS,
#               which lets Kamailio compute HA1 itself, for any algorithm)
# An HA1 is password-equivalent for its realm: protect the file (mode 0640, owner
# kamailio). Only sqlite3, md5sum and sha256sum are needed.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SCHEMA="$HERE/sqlite-init.sql"

usage() {
  sed -n '3,8p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[ $# -ge 2 ] || usage
DB=$1
COMMAND=$2
shift 2

sql() { sqlite3 -batch -bail "$DB" "$@"; }

init_db() {
  if [ ! -s "$DB" ] || [ "$(sql "SELECT count(*) FROM sqlite_master WHERE name = 'version';")" = 0 ]; then
    sql < "$SCHEMA"
  fi
}

# user and domain are restricted to characters that need no SQL or digest quoting
check_name() {
  case $2 in
    '' | *[!A-Za-z0-9._+-]*) echo "users.sh: invalid $1 '$2' (allowed: A-Z a-z 0-9 . _ + -)" >&2; exit 2 ;;
  esac
}

hex_md5() { printf '%s' "$1" | md5sum | cut -d' ' -f1; }
hex_sha256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

case $COMMAND in
  init)
    init_db
    ;;
  add)
    [ $# -eq 3 ] || usage
    user=$1 password=$2 domain=$3
    check_name user "$user"
    check_name domain "$domain"
    if [ "$password" = - ]; then
      IFS= read -r password || true
    fi
    [ -n "$password" ] || { echo "users.sh: empty password" >&2; exit 2; }
    init_db
    realm=$domain
    ha1=$(hex_md5 "$user:$realm:$password")
    ha1b=$(hex_md5 "$user@$domain:$realm:$password")
    ha1_sha256=$(hex_sha256 "$user:$realm:$password")
    plaintext=''
    if [ "${SIPNOTE_STORE_PLAINTEXT:-0}" = 1 ]; then
      # SQL string literal: double every single quote
      plaintext=$(printf '%s' "$password" | sed "s/'/''/g")
    fi
    sql "INSERT INTO subscriber (username, domain, password, ha1, ha1b, ha1_sha256)
         VALUES ('$user', '$domain', '$plaintext', '$ha1', '$ha1b', '$ha1_sha256')
         ON CONFLICT (username, domain) DO UPDATE SET
           password = excluded.password, ha1 = excluded.ha1, ha1b = excluded.ha1b,
           ha1_sha256 = excluded.ha1_sha256;"
    ;;
  remove)
    [ $# -eq 2 ] || usage
    user=$1 domain=$2
    check_name user "$user"
    check_name domain "$domain"
    init_db
    sql "DELETE FROM subscriber WHERE username = '$user' AND domain = '$domain';
         DELETE FROM silo WHERE username = '$user' AND domain = '$domain';"
    ;;
  list)
    init_db
    sql "SELECT username || '@' || domain FROM subscriber ORDER BY domain, username;"
    ;;
  *)
    usage
    ;;
esac
