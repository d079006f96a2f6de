#!/usr/bin/env bash
# A second local Apache Kafka (KRaft, single node) secured with SASL_SSL + SCRAM-SHA-512 and ACLs, for
# end-to-end tests. It runs the jars scripts/kafka.sh fetches, with the same logging, beside that broker.
#
#   scripts/kafka-secure.sh start    fetch if needed; make certificates, passwords and storage (with the
#                                    SCRAM users) if new; start, wait until it answers, apply the ACLs
#   scripts/kafka-secure.sh stop     stop the broker this script started (SIGTERM, then SIGKILL after 30 s)
#   scripts/kafka-secure.sh status   exit 0 if it answers a SASL_SSL metadata request as admin
#   scripts/kafka-secure.sh reset    stop it and delete its data (certificates and passwords are kept)
#
# Settings (environment): VIGIL_SECURE_PORT (19192; the plaintext controller listener takes port + 1),
# VIGIL_SECURE_PRODUCER_TOPICS ("transactions transactions.labels reviews"), VIGIL_CACHE (<repo>/.cache),
# VIGIL_PYTHON (<repo>/.venv/bin/python, with confluent-kafka), KAFKA_HEAP_OPTS.
# State: $VIGIL_CACHE/kafka-secure-<port>/ holds certs/, data/, logs/, broker.pid and env, for tests to
# source: VIGIL_SECURE_BOOTSTRAP, _PROTOCOL, _MECHANISM, _CA (PEM), _TRUSTSTORE(_PASSWORD),
# _{ADMIN,VIGIL,PRODUCER}_{USER,PASSWORD}, _CANARY (vigil's password starts with it: grep logs for leaks).
# ACLs: admin is a super user; vigil may do everything on topics, groups and transactional ids, and
# create/describe/idempotent-write on the cluster; producer may write/describe/create the producer topics.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${VIGIL_CACHE:-$repo/.cache}
host=127.0.0.1
port=${VIGIL_SECURE_PORT:-19192}
cport=$((port + 1))
python=${VIGIL_PYTHON:-$repo/.venv/bin/python}
producer_topics=${VIGIL_SECURE_PRODUCER_TOPICS:-transactions transactions.labels reviews}
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
libs="$cache/kafka-$version/libs"
state="$cache/kafka-secure-$port"
certs="$state/certs" data="$state/data" logs="$state/logs" pidfile="$state/broker.pid" envfile="$state/env"

log() { printf 'kafka-secure.sh: %s\n' "$*" >&2; }

hex() { openssl rand -hex 16; }

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid
  pid=$(cat "$pidfile")
  { kill -0 -- "-$pid" || kill -0 "$pid"; } 2>/dev/null && echo "$pid"
}

java_cmd() {
  # The JVM's scratch (lz4-java unpacks its native library there on every start) in the state folder.
  mkdir -p "$state/tmp"
  java ${KAFKA_HEAP_OPTS:--Xmx768m -Xms256m} -XX:+UseG1GC -Djava.awt.headless=true -Djava.io.tmpdir="$state/tmp" \
    -Dkafka.logs.dir="$logs" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$libs/*" "$@"
}

# Passwords, made once per state directory. New passwords make old SCRAM users stale: drop the data.
ensure_env() {
  [ -f "$envfile" ] && return 0
  if [ -d "$data" ]; then log "no $envfile for the data in $data: deleting the data"; rm -rf "$data"; fi
  (umask 077; cat > "$envfile") <<EOF
# Written by scripts/kafka-secure.sh for the secured test broker on $host:$port; source it.
export VIGIL_SECURE_BOOTSTRAP=$host:$port
export VIGIL_SECURE_PROTOCOL=SASL_SSL
export VIGIL_SECURE_MECHANISM=SCRAM-SHA-512
export VIGIL_SECURE_CA=$certs/ca.pem
export VIGIL_SECURE_TRUSTSTORE=$certs/truststore.p12
export VIGIL_SECURE_TRUSTSTORE_PASSWORD=$(hex)
export VIGIL_SECURE_ADMIN_USER=admin
export VIGIL_SECURE_ADMIN_PASSWORD=$(hex)
export VIGIL_SECURE_VIGIL_USER=vigil
export VIGIL_SECURE_VIGIL_PASSWORD=canary-$(hex)
export VIGIL_SECURE_PRODUCER_USER=producer
export VIGIL_SECURE_PRODUCER_PASSWORD=$(hex)
export VIGIL_SECURE_CANARY=canary-
EOF
  log "wrote new passwords to $envfile"
}

# A CA, the broker's key and certificate (SAN localhost, 127.0.0.1) in a PKCS12 keystore, the CA in a
# PKCS12 truststore (the broker is its own inter-broker client) and as PEM (librdkafka's ssl.ca.location).
ensure_certs() {
  [ -f "$certs/truststore.p12" ] && return 0
  command -v openssl >/dev/null && command -v keytool >/dev/null || { log "openssl and keytool are required"; exit 1; }
  log "making a CA and the broker's certificate in $certs"
  rm -rf "$certs"
  mkdir -p "$certs"
  local c=$certs
  {
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Vigil test CA $port" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$c/ca.key" -out "$c/ca.pem"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$c/broker.key" -out "$c/broker.csr"
    printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth,clientAuth' 'subjectAltName=DNS:localhost,IP:127.0.0.1' > "$c/broker.ext"
    openssl x509 -req -days 3650 -in "$c/broker.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" \
      -CAcreateserial -CAserial "$c/ca.srl" -extfile "$c/broker.ext" -out "$c/broker.pem"
    STOREPASS=$VIGIL_SECURE_TRUSTSTORE_PASSWORD openssl pkcs12 -export -name broker -in "$c/broker.pem" \
      -inkey "$c/broker.key" -certfile "$c/ca.pem" -out "$c/keystore.p12" -passout env:STOREPASS
    STOREPASS=$VIGIL_SECURE_TRUSTSTORE_PASSWORD keytool -importcert -noprompt -alias ca -file "$c/ca.pem" \
      -keystore "$c/truststore.p12.tmp" -storetype PKCS12 -storepass:env STOREPASS
  } >>"$logs/certs.log" 2>&1 || { log "making certificates failed; see $logs/certs.log"; exit 1; }
  mv "$c/truststore.p12.tmp" "$c/truststore.p12"
}

# The development broker's settings, with the listeners swapped for SASL_SSL and the security added.
write_config() {
  sed -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$cport|g" -e "s|@DATA@|$data|g" \
    "$here/kafka/server.properties.in" |
    grep -vE '^(listeners|advertised\.listeners|inter\.broker\.listener\.name|listener\.security\.protocol\.map)='
  cat <<EOF
# Security (scripts/kafka-secure.sh): clients reach only the SASL_SSL listener; the controller
# listener stays plaintext on $host, where its ANONYMOUS principal is a super user.
listeners=SASL_SSL://$host:$port,CONTROLLER://$host:$cport
advertised.listeners=SASL_SSL://$host:$port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$VIGIL_SECURE_ADMIN_PASSWORD";
ssl.keystore.type=PKCS12
ssl.keystore.location=$certs/keystore.p12
ssl.keystore.password=$VIGIL_SECURE_TRUSTSTORE_PASSWORD
ssl.key.password=$VIGIL_SECURE_TRUSTSTORE_PASSWORD
ssl.truststore.type=PKCS12
ssl.truststore.location=$certs/truststore.p12
ssl.truststore.password=$VIGIL_SECURE_TRUSTSTORE_PASSWORD
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
}

# The admin client's jobs, in Python (confluent-kafka): the jars hold no AclCommand (kafka-tools is
# not fetched). Credentials go through the environment, never the command line.
need_python() {
  "$python" -c 'import confluent_kafka' 2>/dev/null || { log "$python with confluent-kafka is required (scripts/setup.sh)"; exit 1; }
}

admin() {
  ( set -a; . "$envfile"; PRODUCER_TOPICS=$producer_topics "$python" - "$1" ) <<'PY'
import os, sys
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AdminClient, AclBinding, AclOperation as Op, AclPermissionType,
                                   ResourcePatternType, ResourceType as R)
e = os.environ
admin = AdminClient({"bootstrap.servers": e["VIGIL_SECURE_BOOTSTRAP"], "security.protocol": "SASL_SSL",
                     "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": e["VIGIL_SECURE_ADMIN_USER"],
                     "sasl.password": e["VIGIL_SECURE_ADMIN_PASSWORD"], "ssl.ca.location": e["VIGIL_SECURE_CA"],
                     "log_level": 3})
try:
    md = admin.list_topics(timeout=10)
except KafkaException as err:
    sys.exit(f"no SASL_SSL answer as admin from {e['VIGIL_SECURE_BOOTSTRAP']}: {err}")
if sys.argv[1] == "check":
    print(f"broker(s) {sorted(b.port for b in md.brokers.values())} answer as admin over SASL_SSL; {len(md.topics)} topic(s)")
    sys.exit(0)
def allow(user, kind, name, *ops):
    return [AclBinding(kind, name, ResourcePatternType.LITERAL, f"User:{user}", "*", op, AclPermissionType.ALLOW)
            for op in ops]
vigil, producer = e["VIGIL_SECURE_VIGIL_USER"], e["VIGIL_SECURE_PRODUCER_USER"]
acls = (allow(vigil, R.TOPIC, "*", Op.ALL) + allow(vigil, R.GROUP, "*", Op.ALL)
        + allow(vigil, R.TRANSACTIONAL_ID, "*", Op.ALL)
        + allow(vigil, R.BROKER, "kafka-cluster", Op.IDEMPOTENT_WRITE, Op.DESCRIBE, Op.CREATE)
        + allow(producer, R.BROKER, "kafka-cluster", Op.IDEMPOTENT_WRITE))
for topic in e["PRODUCER_TOPICS"].split():
    acls += allow(producer, R.TOPIC, topic, Op.WRITE, Op.DESCRIBE, Op.CREATE)
for future in admin.create_acls(acls, request_timeout=15).values():
    future.result()
print(f"{len(acls)} ACL bindings in place")
PY
}

start() {
  if running_pid >/dev/null; then
    answers && { log "the secured broker already runs on $host:$port; leaving it alone"; return 0; }
    log "the broker this script started does not answer on $host:$port (still starting?); stop it first"; exit 1
  fi
  if answers; then log "something this script did not start listens on $host:$port"; exit 1; fi
  need_python
  "$here/kafka.sh" fetch
  mkdir -p "$state" && chmod 700 "$state" && mkdir -p "$logs"
  ensure_env
  set -a; . "$envfile"; set +a
  ensure_certs
  mkdir -p "$data"
  (umask 077; write_config > "$state/server.properties")
  if [ ! -f "$data/meta.properties" ]; then
    local cluster
    cluster=$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$logs/storage.log" | tail -n 1)
    log "formatting storage in $data (cluster $cluster) with SCRAM users admin, vigil, producer"
    java_cmd kafka.tools.StorageTool format -t "$cluster" -c "$state/server.properties" \
      --add-scram "SCRAM-SHA-512=[name=$VIGIL_SECURE_ADMIN_USER,password=$VIGIL_SECURE_ADMIN_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$VIGIL_SECURE_VIGIL_USER,password=$VIGIL_SECURE_VIGIL_PASSWORD]" \
      --add-scram "SCRAM-SHA-512=[name=$VIGIL_SECURE_PRODUCER_USER,password=$VIGIL_SECURE_PRODUCER_PASSWORD]" \
      >>"$logs/storage.log" 2>&1 || { log "formatting failed; see $logs/storage.log"; exit 1; }
  fi
  local from
  from=$(($(stat -c %s "$logs/server.log" 2>/dev/null || echo 0) + 1))  # only this start's lines count
  log "starting the secured Apache Kafka $version on SASL_SSL://$host:$port (logs: $logs/server.log)"
  setsid bash -c "$(declare -f java_cmd); $(declare -p here logs libs state); java_cmd kafka.Kafka '$state/server.properties'" \
    >>"$logs/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  local deadline=$((SECONDS + ${VIGIL_SECURE_START_TIMEOUT:-90}))
  until answers && tail -c "+$from" "$logs/server.log" 2>/dev/null | grep -q "Kafka Server started"; do
    if ! running_pid >/dev/null; then
      log "the broker exited during start-up; last lines of $logs/stdout.log and server.log:"
      tail -n 20 "$logs/stdout.log" "$logs/server.log" >&2 2>/dev/null || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the broker did not start within ${VIGIL_SECURE_START_TIMEOUT:-90} s; see $logs/server.log"
      exit 1
    fi
    sleep 0.5
  done
  admin acls >&2 || { log "applying the ACLs failed"; exit 1; }
  log "secured broker ready on SASL_SSL://$host:$port; credentials: source $envfile"
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    log "no secured broker started by this script runs on port $port"
    rm -f "$pidfile"
    return 0
  fi
  log "stopping the secured broker (process group $pid)"
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

reset() {
  stop
  if answers; then log "something this script did not start listens on $host:$port; keeping $data"; return 0; fi
  rm -rf "$data"
  log "deleted $data (certificates and passwords in $state are kept; delete $state for new ones)"
}

status() {
  need_python
  if [ -f "$envfile" ] && answers && admin check; then
    echo "env: $envfile"
  else
    echo "no secured broker answers on $host:$port"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  reset) reset ;;
  *) echo "usage: $0 start|stop|status|reset" >&2; exit 2 ;;
esac
