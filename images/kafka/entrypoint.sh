#!/bin/bash
# Writes server.properties from KAFKA_CFG_* variables (KAFKA_CFG_LOG_DIRS -> log.dirs),
# formats the KRaft storage on first start, then runs the broker in the foreground.
set -euo pipefail
conf=/var/lib/kafka/server.properties
: > "$conf"
while IFS='=' read -r name value; do
  key=$(printf '%s' "${name#KAFKA_CFG_}" | tr '[:upper:]_' '[:lower:].')
  printf '%s=%s\n' "$key" "$value" >> "$conf"
done < <(env | grep '^KAFKA_CFG_' | sort)
cp="/opt/kafka/libs/*"
log_dir=$(grep '^log.dirs=' "$conf" | cut -d= -f2)
if [ ! -f "$log_dir/meta.properties" ]; then
  java -cp "$cp" kafka.tools.StorageTool format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$conf"
fi
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
  -cp "$cp" kafka.Kafka "$conf"
