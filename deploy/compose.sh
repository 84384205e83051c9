#!/usr/bin/env bash
# The compose environment with whichever compose this machine has: docker
# compose (v2) when present, else docker-compose (1.29, which has no
# `up --wait` and answers it with its usage and exit 0). The make targets
# up, up-cluster, scale, slack, down and compose call it.
#
#   deploy/compose.sh up [--cluster]   start or update it, wait until every container is healthy
#   deploy/compose.sh scale ROUTERS WEB
#   deploy/compose.sh slack            the Slack gateway (its tokens in .env)
#   deploy/compose.sh down             remove every container, network and volume of the project
#   deploy/compose.sh wait             wait until every container is healthy
#   deploy/compose.sh run ARGS...      any compose command, on the project's files
#
# The files: docker-compose.yml, docker-compose.cluster.yml while the
# cluster runs (or with --cluster), and docker-compose.override.yml when it
# exists (your own services). Environment: BOTMESH_PROJECT (the compose
# project, default botmesh), BOTMESH_UP_TIMEOUT (seconds, default 180),
# BOTMESH_TAG (the images' tag, default dev).
set -euo pipefail
cd "$(dirname "$0")/.."

project=${BOTMESH_PROJECT:-botmesh}
timeout=${BOTMESH_UP_TIMEOUT:-180}
label="label=com.docker.compose.project=$project"

die() {
  echo "$*" >&2
  exit 1
}

if ! command -v docker >/dev/null; then
  die "Docker is needed here, with docker compose or docker-compose (Debian: apt-get install docker.io docker-compose)."
fi
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  die "docker compose or docker-compose is needed (Debian: apt-get install docker-compose)."
fi
docker info >/dev/null 2>&1 || die "Docker does not answer (docker info failed): is the daemon running, and may this user use it?"

# containers [FILTER...] lists the ids of the project's service containers.
containers() {
  docker ps -aq --filter "$label" --filter label=com.docker.compose.oneoff=False "$@"
}

cluster_runs() {
  [ -n "$(containers --filter label=com.docker.compose.service=nats-2)" ]
}

# files [cluster] sets the -f arguments.
files=()
set_files() {
  files=(-f docker-compose.yml)
  [ "${1:-}" = cluster ] && files+=(-f docker-compose.cluster.yml)
  [ -f docker-compose.override.yml ] && files+=(-f docker-compose.override.yml)
  return 0
}

dc() {
  echo "+ ${compose[*]} -p $project ${files[*]} $*" >&2
  "${compose[@]}" -p "$project" "${files[@]}" "$@"
}

# wait_healthy waits until every container of the project runs and is
# healthy (or runs, for one without a health check). On timeout it names
# the others, with their last log lines, and fails.
wait_healthy() {
  local deadline=$((SECONDS + timeout)) ids states waiting shown=""
  while :; do
    ids=$(containers)
    [ -n "$ids" ] || die "no container of the project $project"
    # shellcheck disable=SC2086
    states=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' $ids 2>/dev/null || true)
    waiting=$(awk '!($3 == "running" && ($4 == "healthy" || $4 == "-"))' <<<"$states" | sort)
    if [ -z "$waiting" ] && [ -n "$states" ]; then
      echo "every container is healthy: $(wc -l <<<"$states") in project $project" >&2
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "not healthy after ${timeout}s (service, container, state, health):" >&2
      sed 's/^/  /' <<<"$waiting" >&2
      while read -r svc name _; do
        [ -n "$name" ] || continue
        echo "--- last log lines of $svc (${name#/}):" >&2
        docker logs --tail 20 "${name#/}" 2>&1 | sed 's/^/  /' >&2
      done <<<"$waiting"
      return 1
    fi
    local now
    now=$(awk '{print $1 " (" $3 ($4 == "-" ? "" : ", " $4) ")"}' <<<"$waiting" | sort | uniq -c | awk '{$1 = $1 > 1 ? $1 "x" : ""; print}' | xargs)
    if [ "$now" != "$shown" ]; then
      echo "waiting for: $now" >&2
      shown=$now
    fi
    sleep 2
  done
}

# published SERVICE PORT prints the host address of a service's port.
published() {
  local id
  id=$(containers --filter "label=com.docker.compose.service=$1" | head -n 1)
  [ -n "$id" ] && docker port "$id" "$2" 2>/dev/null | head -n 1
}

# write_botctl_creds writes botctl.creds: the NATS address and botctl's
# user and password from .env, for bin/botctl --nats_creds.
write_botctl_creds() {
  local addr password
  addr=$(published nats 4222)
  password=$(sed -n 's/^BOTMESH_NATS_PASSWORD_BOTCTL=//p' .env 2>/dev/null)
  [ -n "$addr" ] && [ -n "$password" ] || return 0
  (
    umask 077
    printf '# botctl against the compose environment (make up writes it from .env):\n#   bin/botctl --nats_creds botctl.creds ping\nurl: nats://%s\nuser: botctl\npassword: %s\n' "$addr" "$password" >botctl.creds
  )
}

say_ready() {
  local web
  web=$(published frontdoor 8080)
  write_botctl_creds
  echo
  echo "botmesh is up."
  [ -n "$web" ] && echo "  web chat: http://$web/   its token: sed -n 's/^BOTMESH_WEB_TOKEN=//p' .env"
  echo "  botctl:   bin/botctl --nats_creds botctl.creds ping \"list services\""
  echo "  stop:     make down"
}

cmd=${1:-}
shift || true
case "$cmd" in
up)
  mode=single
  [ "${1:-}" = --cluster ] && mode=cluster
  if [ "$mode" = single ] && cluster_runs; then
    die "the 3-node NATS cluster of this project runs: make down first (its streams are replicated 3 times), or make up-cluster"
  fi
  if [ "$mode" = cluster ] && [ -n "$(containers --filter label=com.docker.compose.service=nats)" ] && ! cluster_runs; then
    die "the single-node environment of this project runs: make down first, then make up-cluster"
  fi
  set_files "$mode"
  dc up -d --remove-orphans
  wait_healthy
  say_ready
  ;;
scale)
  [ $# -eq 2 ] || die "usage: deploy/compose.sh scale ROUTERS WEB_GATEWAYS"
  cluster_runs && set_files cluster || set_files
  dc up -d --no-recreate --scale "router=$1" --scale "gateway-web=$2"
  wait_healthy
  say_ready
  ;;
slack)
  for v in BOTMESH_SLACK_APP_TOKEN BOTMESH_SLACK_BOT_TOKEN; do
    [ -n "${!v:-}" ] || grep -q "^$v=." .env 2>/dev/null || die "set $v in .env first (see the README's Slack section for the two tokens)"
  done
  cluster_runs && set_files cluster || set_files
  dc --profile slack up -d --no-recreate gateway-slack
  wait_healthy
  ;;
down)
  set_files cluster
  # Compose stops the containers in order (SIGTERM, then 10 s). It needs
  # .env to read the files; without one, what it left is removed below.
  dc --profile slack down -v --remove-orphans -t 10 || echo "compose down failed: removing the project's containers, networks and volumes by its label" >&2
  ids=$(docker ps -aq --filter "$label")
  # shellcheck disable=SC2086
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  nets=$(docker network ls -q --filter "$label")
  # shellcheck disable=SC2086
  [ -z "$nets" ] || docker network rm $nets >/dev/null
  vols=$(docker volume ls -q --filter "$label")
  # shellcheck disable=SC2086
  [ -z "$vols" ] || docker volume rm -f $vols >/dev/null
  left="$(docker ps -aq --filter "$label")$(docker network ls -q --filter "$label")$(docker volume ls -q --filter "$label")"
  [ -z "$left" ] || die "left behind in project $project: $left"
  rm -f botctl.creds
  echo "removed every container, network and volume of project $project" >&2
  ;;
wait)
  wait_healthy
  ;;
run)
  cluster_runs && set_files cluster || set_files
  dc "$@"
  ;;
*)
  die "usage: deploy/compose.sh up [--cluster] | scale ROUTERS WEB | slack | down | wait | run ARGS..."
  ;;
esac
