#!/usr/bin/env bash
# Local Apache Kafka (KRaft, single node) for development, tests and the demo. No Docker needed.
#
#   scripts/kafka.sh fetch    resolve the broker's jars from Maven Central into the cache (once)
#   scripts/kafka.sh start    fetch if needed, format storage if new, start, wait until it answers
#   scripts/kafka.sh stop     stop the broker this script started (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka.sh status   print whether it runs; exit 0 if it answers
#   scripts/kafka.sh reset    stop the broker this script started and delete its data (a clean slate)
#   scripts/kafka.sh kill     SIGKILL the broker this script started (a crash, for fault tests)
#
# Settings (environment): VIGIL_KAFKA_HOST (127.0.0.1), VIGIL_KAFKA_PORT (9092),
# VIGIL_KAFKA_CONTROLLER_PORT (port + 1), VIGIL_KAFKA_ADVERTISED_PORT (port: the port clients are
# told to connect to — a fault proxy's), VIGIL_CACHE (<repo>/.cache), KAFKA_HEAP_OPTS,
# VIGIL_KAFKA_DATA (the broker's log directory; <cache>/kafka-broker-<port>/data — a folder on a
# tmpfs such as /dev/shm keeps a benchmark's broker off the disk).
# Running start twice is harmless: a broker that already answers is left alone.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VIGIL_CACHE:-$repo/.cache}
host=${VIGIL_KAFKA_HOST:-127.0.0.1}
port=${VIGIL_KAFKA_PORT:-9092}
cport=${VIGIL_KAFKA_CONTROLLER_PORT:-$((port + 1))}
aport=${VIGIL_KAFKA_ADVERTISED_PORT:-$port}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
libs="$cache/kafka-$version/libs"
state="$cache/kafka-broker-$port"
data=${VIGIL_KAFKA_DATA:-$state/data}
logs="$state/logs"
pidfile="$state/broker.pid"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  # The group, or the leader itself in the moment before setsid made the group.
  { kill -0 -- "-$pid" || kill -0 "$pid"; } 2>/dev/null && echo "$pid"
}

fetch() {
  if [ -f "$libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { log "mvn (Apache Maven) is required to fetch Kafka from Maven Central"; exit 1; }
  command -v java >/dev/null || { log "java (17 or newer) is required to run Kafka"; exit 1; }
  log "fetching Apache Kafka $version and its dependencies from Maven Central into $libs"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -B -q -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

java_cmd() {
  # The JVM's scratch (lz4-java unpacks its native library there on every start) in the state folder.
  mkdir -p "$state/tmp"
  java ${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true -Djava.io.tmpdir="$state/tmp" \
    -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$libs/*" "$@"
}

start() {
  if answers; then
    log "a broker already answers on $host:$port; leaving it alone"
    return 0
  fi
  fetch
  mkdir -p "$data" "$logs"
  sed -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA@|$data|g" \
    -e "s|@ADVERTISED_PORT@|$aport|g" \
    "$here/kafka/server.properties.in" > "$state/server.properties"
  if [ ! -f "$data/meta.properties" ]; then
    local cluster
    cluster=$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$logs/storage.log" | tail -n 1)
    log "formatting storage in $data (cluster $cluster)"
    java_cmd kafka.tools.StorageTool format -t "$cluster" -c "$state/server.properties" \
      >>"$logs/storage.log" 2>&1 || { log "formatting failed; see $logs/storage.log"; exit 1; }
  fi
  log "starting Apache Kafka $version on $host:$port (logs: $logs/server.log)"
  setsid bash -c "$(declare -f java_cmd); $(declare -p here logs libs state); java_cmd kafka.Kafka '$state/server.properties'" \
    >>"$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"  # setsid made it the leader of a process group: bash and the JVM under it
  local deadline=$((SECONDS + ${VIGIL_KAFKA_START_TIMEOUT:-90}))
  until answers && grep -q "Kafka Server started" "$logs/server.log" 2>/dev/null; do
    if ! running_pid >/dev/null; then
      log "the broker exited during start-up; last lines of $logs/stdout.log and server.log:"
      tail -n 20 "$logs/stdout.log" "$logs/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the broker did not answer within ${VIGIL_KAFKA_START_TIMEOUT:-90} s; see $logs/server.log"
      exit 1
    fi
    sleep 0.5
  done
  log "broker ready on $host:$port"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "no broker started by this script runs on port $port"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping the broker (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 -- "-$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the broker did not stop within 30 s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  log "stopped"
}

crash() {
  local pid
  pid=$(running_pid) || { log "no broker started by this script runs on port $port"; return 1; }
  kill -KILL -- "-$pid" 2>/dev/null || true
  while kill -0 -- "-$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  log "killed the broker on port $port (SIGKILL)"
}

reset() {
  stop
  if answers; then
    log "a broker this script did not start answers on $host:$port; its data is not ours to delete"
    return 0
  fi
  rm -rf "$data"
  log "deleted $data"
}

status() {
  if answers; then
    echo "a broker answers on $host:$port (Apache Kafka $version cache: $libs)"
  else
    echo "no broker answers on $host:$port"
    return 1
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) reset ;;
  kill) crash ;;
  *) echo "usage: $0 fetch|start|stop|status|reset|kill" >&2; exit 2 ;;
esac
