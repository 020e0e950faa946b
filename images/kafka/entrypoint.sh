#!/bin/bash
# Writes server.properties from KAFKA_CFG_* variables (KAFKA_CFG_LOG_DIRS -> log.dirs),
# formats the KRaft storage on first start, runs the broker, and — when KAFKA_ADMIN_PASSWORD
# is set (the SASL/SCRAM cluster) — sets the admin principal's password and gives every
# principal the default quotas, before it reports ready (/var/lib/kafka/ready).
# KAFKA_LOCAL_PORT: a PLAINTEXT listener bound to the container's own loopback (so only
# processes inside this container reach it; ANONYMOUS is a super user there), which the
# config tool and the readiness wait use.
#
# The admin password is set whenever it differs from what this volume was last given, not
# only when the storage is formatted: the password in .env is the truth, so a volume that
# outlived its .env (or a changed password) still comes up instead of refusing its own
# admin for ever. The password is on
# the config tool's command line inside this container only; server.properties holds the
# inter-broker credential and is mode 600.
set -euo pipefail
umask 077
conf=/var/lib/kafka/server.properties
ready=/var/lib/kafka/ready
rm -f "$ready"
: > "$conf"
while IFS='=' read -r name value; do
  key=$(printf '%s' "${name#KAFKA_CFG_}" | tr '[:upper:]_' '[:lower:].')
  printf '%s=%s\n' "$key" "$value" >> "$conf"
done < <(env | grep '^KAFKA_CFG_' | sort)

scram='org.apache.kafka.common.security.scram.ScramLoginModule required'
if [ -n "${KAFKA_ADMIN_PASSWORD:-}" ]; then
  # The listener names hold dashes and dots, which KAFKA_CFG_* names cannot carry.
  for listener in ${KAFKA_SASL_LISTENERS:-internal external}; do
    if [ "$listener" = "${KAFKA_INTER_BROKER_LISTENER:-internal}" ]; then
      printf 'listener.name.%s.scram-sha-512.sasl.jaas.config=%s username="admin" password="%s";\n' \
        "$listener" "$scram" "$KAFKA_ADMIN_PASSWORD" >> "$conf"
    else
      printf 'listener.name.%s.scram-sha-512.sasl.jaas.config=%s;\n' "$listener" "$scram" >> "$conf"
    fi
  done
fi

cp="/opt/kafka/libs/*"
log_dir=$(grep '^log.dirs=' "$conf" | cut -d= -f2)
if [ ! -f "$log_dir/meta.properties" ]; then
  java -cp "$cp" kafka.tools.StorageTool format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$conf"
fi

# shellcheck disable=SC2086
java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp "$cp" kafka.Kafka "$conf" &
broker=$!
trap 'kill -TERM "$broker"; wait "$broker"' TERM INT

configs() {
  java -cp "$cp" kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:${KAFKA_LOCAL_PORT:-9092}" \
    "$@" >/dev/null
}
if [ -n "${KAFKA_ADMIN_PASSWORD:-}" ]; then
  # What this volume's metadata already holds: a hash of what was set last (the password
  # is random and long, so its hash is no help to a reader of the volume). A restart with
  # nothing changed starts no tool at all, so it is ready as soon as the broker listens.
  quotas="producer_byte_rate=${KAFKA_TENANT_PRODUCE_BYTES_PER_S:-1048576},consumer_byte_rate=${KAFKA_TENANT_FETCH_BYTES_PER_S:-8388608},request_percentage=${KAFKA_TENANT_REQUEST_PERCENT:-25}"
  applied=/var/lib/kafka/applied
  want=$(printf '%s\n%s\n%s\n' "$KAFKA_ADMIN_PASSWORD" "$quotas" "${KAFKA_UNLIMITED_USERS:-admin worker}" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$applied" 2>/dev/null)" != "$want" ]; then
    tries=0
    until said=$(configs --alter --entity-type users --entity-name admin --add-config \
        "SCRAM-SHA-512=[iterations=8192,password=$KAFKA_ADMIN_PASSWORD]" 2>&1); do
      kill -0 "$broker" 2>/dev/null || { wait "$broker"; exit $?; }
      tries=$((tries + 1))
      if [ $((tries % 15)) -eq 0 ]; then  # still failing: say why, once in a while
        echo "entrypoint: admin password not set yet: $(grep -m1 -iE 'error|exception' <<<"$said")" >&2
      fi
      sleep 1
    done
    # Per-principal default quotas (a tenant cannot flood the broker or the worker), and
    # none for the principals the pipeline itself runs as.
    configs --alter --entity-type users --entity-default --add-config "$quotas"
    for user in ${KAFKA_UNLIMITED_USERS:-admin worker}; do
      configs --alter --entity-type users --entity-name "$user" --add-config \
        'producer_byte_rate=1073741824,consumer_byte_rate=1073741824,request_percentage=400'
    done
    echo "$want" > "$applied"
  fi
fi
until (exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_LOCAL_PORT:-9092}") 2>/dev/null; do
  kill -0 "$broker" 2>/dev/null || { wait "$broker"; exit $?; }
  sleep 0.5
done
touch "$ready"
wait "$broker"
