#!/usr/bin/env bash
# Container acceptance run: docker-compose.yml, the examples/ci workflow and
# stanmigrate's own image, for real, under rootful podman.
#
#   sudo .ci/containers.sh          (CI: called by .ci/run after go test)
#
# 1. installs podman, podman-compose and runc from Debian's packages when
#    absent, and configures podman in a private directory (env vars only,
#    never /etc): vfs storage, runc, cgroupfs, no registries to pull from;
# 2. builds the compose file's images FROM scratch from static builds of
#    the nats-streaming-server and nats-server versions this repository pins,
#    tagged with the names docker-compose.yml uses, so nothing is pulled;
# 3. brings the real docker-compose.yml up with podman-compose, runs the
#    examples/ci workflow's stanmigrate steps as written (its go install
#    step replaced by a build of this checkout) and checks the JUnit report;
# 4. builds stanmigrate's image (Dockerfile) and runs plan, migrate and
#    verify from it; the migrating container is killed mid-copy once and a
#    re-run with the same state volume resumes;
# 5. tears everything down (containers, volumes, networks, images, the
#    private directory) even on failure, checks podman's global
#    configuration and storage were not touched, and prints each stage's
#    time. A failure names its stage.
#
# docs/ci.md explains how to run it by hand and what it costs.
set -Eeuo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
compose_file=$repo/docker-compose.yml
workflow=$repo/examples/ci/github-actions.yml
job=rehearse
bulk_fixture=$repo/.ci/containers/bulk.yaml
read_py=$repo/.ci/containers/read.py
py=/usr/bin/python3 # Debian's, which has python3-yaml (a podman-compose dependency)

# podman-compose 1.0 ignores the compose file's name:, so the project name
# is passed; it must stay docker-compose.yml's name: (checked below).
project=stanmigrate
image=localhost/stanmigrate:acceptance
state_volume=stanmigrate-acceptance-state
migrate_ctr=stanmigrate-acceptance-migrate
install_module=github.com/stanmigrate/stanmigrate/cmd/stanmigrate
ports=(4222 8222 4223 8223) # what docker-compose.yml publishes on 127.0.0.1

run_dir=""
current="start"
reason=""
stage_times=()
cni_ipam=/var/lib/cni/networks/${project}_default
cni_ipam_existed=0
[ -e "$cni_ipam" ] && cni_ipam_existed=1
# Runtime directories podman, runc and CNI create outside any configurable
# root; the run removes those it created (only when left empty, but for the
# blob-info cache, see fingerprint).
runtime_dirs=(/var/lib/containers /var/lib/cni /run/netns /run/runc)
new_runtime_dirs=()
for d in "${runtime_dirs[@]}"; do [ -e "$d" ] || new_runtime_dirs+=("$d"); done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
die() { reason=$*; echo "containers.sh: $current: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
read_file() { "$py" "$read_py" "$@"; }

run_stage() {
  local name=$1 t0
  shift
  current=$name
  echo "== stage $name"
  t0=$(now)
  "$@"
  stage_times+=("$name $(since "$t0")")
  echo "== stage $name: ok ($(since "$t0") s)"
  current="the script, after stage $name"
}

# --- install ---------------------------------------------------------------

stage_install() {
  local missing=()
  have podman || missing+=(podman)
  have podman-compose || missing+=(podman-compose)
  have runc || missing+=(runc)
  have iptables || missing+=(iptables) # CNI's portmap publishes ports with it
  have curl || missing+=(curl)
  [ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
  { [ -x "$py" ] && "$py" -c 'import yaml' 2>/dev/null; } || missing+=(python3-yaml)
  if [ ${#missing[@]} -eq 0 ]; then
    echo "present: podman $(podman --version | awk '{print $3}'), podman-compose, runc, iptables, curl"
    return
  fi
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: install them or run as root"
  echo "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends podman podman-compose runc iptables curl ca-certificates python3-yaml </dev/null >"$run_dir/apt.log" 2>&1 ||
    { tail -20 "$run_dir/apt.log" >&2; die "apt-get install failed (log above)"; }
}

# --- preflight ---------------------------------------------------------------

stage_preflight() {
  [ "$(id -u)" = 0 ] || die "rootful podman needs root: run it with sudo"
  local p
  for p in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "127.0.0.1:$p is in use, and docker-compose.yml publishes it: stop what listens there"
    fi
  done
  grep -qx "name: $project" "$compose_file" || die "docker-compose.yml's name: is not $project; update project= in this script"
}

# --- configure: podman in a private directory ------------------------------

stage_configure() {
  local pm=$run_dir/podman
  mkdir -p "$pm"/{storage,run,tmp,networks}
  cat >"$pm/containers.conf" <<EOF
[containers]
default_ulimits = []
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
lock_type = "file"
events_logger = "file"
events_logfile_path = "$pm/tmp/events.log"
tmp_dir = "$pm/tmp"
[network]
network_backend = "cni"
network_config_dir = "$pm/networks"
cni_plugin_dirs = ["/usr/lib/cni"]
EOF
  cat >"$pm/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$pm/storage"
runroot = "$pm/run"
EOF
  # No search registries: a short image name resolves to a local image or
  # fails; nothing is ever pulled.
  echo 'unqualified-search-registries = []' >"$pm/registries.conf"
  export CONTAINERS_CONF=$pm/containers.conf
  export CONTAINERS_STORAGE_CONF=$pm/storage.conf
  export CONTAINERS_REGISTRIES_CONF=$pm/registries.conf
  unset CONTAINER_HOST CONTAINER_CONNECTION DOCKER_HOST
  local info
  info=$(podman info --format '{{.Store.GraphRoot}} {{.Store.GraphDriverName}} {{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}') ||
    die "podman info failed with the private configuration in $pm"
  [ "$info" = "$pm/storage vfs runc cgroupfs" ] || die "podman did not take the private configuration: $info"
  echo "podman: $info"
}

# --- build-servers: the compose images' binaries -----------------------------

# pinned_version MODULE_DIR MODULE prints the version MODULE_DIR/go.mod pins.
pinned_version() { (cd "$1" && go mod edit -json) | read_file gomod-version "$2"; }

stage_build_servers() {
  local svc img name tag version dir
  while IFS=$'\t' read -r svc img; do
    name=${img%%:*} tag=${img#*:}
    mkdir -p "$run_dir/images/$svc"
    case $name in
    nats-streaming)
      version=$(pinned_version "$repo" github.com/nats-io/nats-streaming-server)
      [ "v$tag" = "$version" ] || die "docker-compose.yml runs $img but go.mod pins nats-streaming-server $version"
      echo "$svc: nats-streaming-server $version (go.mod)"
      (cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$run_dir/images/$svc/server" github.com/nats-io/nats-streaming-server) ||
        die "cannot build nats-streaming-server $version"
      ;;
    nats)
      dir=$repo/internal/testkit/serverbin/lines/v${tag/./_}
      [ -f "$dir/go.mod" ] || die "docker-compose.yml runs $img, a nats-server line the project does not pin (no $dir/go.mod)"
      version=$(pinned_version "$dir" github.com/nats-io/nats-server/v2)
      case $version in "v$tag" | "v$tag".*) ;; *) die "docker-compose.yml runs $img but $dir/go.mod pins $version" ;; esac
      echo "$svc: nats-server $version (${dir#"$repo"/}/go.mod)"
      (cd "$dir" && CGO_ENABLED=0 go build -trimpath -o "$run_dir/images/$svc/server" github.com/nats-io/nats-server/v2) ||
        die "cannot build nats-server $version"
      ;;
    *) die "docker-compose.yml's service $svc runs $img, which this script does not know how to build" ;;
    esac
    echo "$img" >"$run_dir/images/$svc/tag"
  done < <(read_file compose-images "$compose_file")
}

# --- build-images: FROM scratch, tagged as docker-compose.yml names them ----

stage_build_images() {
  local d img
  for d in "$run_dir"/images/*/; do
    img=$(cat "$d/tag")
    printf 'FROM scratch\nCOPY server /server\nENTRYPOINT ["/server"]\n' >"$d/Containerfile"
    podman build --pull=never -q -t "$img" "$d" >/dev/null || die "podman build of $img failed"
    echo "$img: $(podman run --rm --network none "$img" --version 2>&1 | head -1)"
  done
}

# --- compose-up: the real docker-compose.yml ---------------------------------

compose() { podman-compose -p "$project" -f "$compose_file" "$@"; }

stage_compose_up() {
  compose up -d >"$run_dir/compose-up.log" 2>&1 ||
    { cat "$run_dir/compose-up.log" >&2; die "podman-compose up -d failed (output above)"; }
  local deadline=$((SECONDS + 60)) name state why
  while :; do
    for name in $(podman ps -a --filter "label=io.podman.compose.project=$project" --format '{{.Names}}'); do
      state=$(podman inspect -f '{{.State.Status}} (exit code {{.State.ExitCode}})' "$name")
      [ "${state%% *}" = running ] && continue
      why=$(podman logs "$name" 2>&1 | grep -m1 -iE 'flag provided|error|fatal|invalid|unknown|unsupported' || true)
      die "container $name is $state instead of running${why:+: \"$why\"} (its log is below: a command line the server rejects? a port in use?)"
    done
    if curl -fsS -o /dev/null http://127.0.0.1:8222/streaming/serverz 2>/dev/null &&
      curl -fsS -o /dev/null 'http://127.0.0.1:8223/healthz?js-enabled-only=true' 2>/dev/null; then
      break
    fi
    [ $SECONDS -lt $deadline ] || die "the compose servers did not answer on 127.0.0.1:8222 and :8223 within 60 s"
    sleep 0.5
  done
  podman ps --filter "label=io.podman.compose.project=$project" --format '{{.Names}}  {{.Image}}  {{.Ports}}'
}

# --- workflow: examples/ci's stanmigrate steps, as written --------------------

stage_workflow() {
  local work=$run_dir/work name line ran=0 installed=0 wf_env=()
  mkdir -p "$work"
  # The workflow runs at the root of a repository holding examples/ci.
  ln -s "$repo/examples" "$work/examples"
  mapfile -t wf_env < <(read_file workflow-env "$workflow" "$job")
  while IFS=$'\t' read -r name line; do
    case $line in
    "go install $install_module@"*)
      # The one substitution: the module is not on a public proxy from
      # here, so the checkout's own build stands in for the pinned release.
      echo "-- $name: $line"
      echo "   substituted: CGO_ENABLED=0 go build ./cmd/stanmigrate (this checkout) onto PATH"
      (cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$run_dir/bin/stanmigrate" ./cmd/stanmigrate) || die "step \"$name\": cannot build stanmigrate"
      installed=1
      ;;
    "stanmigrate "*)
      [ $installed = 1 ] || die "step \"$name\" runs stanmigrate before the workflow installs it"
      echo "-- $name: $line"
      (cd "$work" && env "${wf_env[@]}" PATH="$run_dir/bin:$PATH" bash -euo pipefail -c "$line") ||
        die "workflow step \"$name\" ($line) failed"
      ran=$((ran + 1))
      ;;
    *) echo "-- $name: $line  [not a stanmigrate step: compose-up did this, or the CI runner does]" ;;
    esac
  done < <(read_file workflow-steps "$workflow" "$job")
  [ $ran -gt 0 ] || die "$workflow has no stanmigrate steps"
}

# --- junit: the report the workflow publishes ---------------------------------

stage_junit() {
  local report want
  report=$run_dir/work/$(read_file workflow-artifact "$workflow" "$job")
  want=$(read_file fixture-cases "$repo/examples/ci/fixture.yaml")
  read_file junit "$report" "$want" || die "the workflow's JUnit report is not a passing one of $want test cases"
}

# --- image: stanmigrate's own ----------------------------------------------

stage_image_build() {
  ENGINE=podman "$repo/.ci/image.sh" "$image" >/dev/null || die "stanmigrate's image did not build (.ci/image.sh)"
  local user entry mnt
  user=$(podman image inspect "$image" --format '{{.Config.User}}')
  entry=$(podman image inspect "$image" --format '{{json .Config.Entrypoint}}')
  case ${user%%:*} in "" | 0 | root) die "the image runs as root (USER '$user')" ;; esac
  [ "$entry" = '["/stanmigrate"]' ] || die "the image's entrypoint is $entry, want [\"/stanmigrate\"]"
  mnt=$(podman image mount "$image")
  [ -s "$mnt/etc/ssl/certs/ca-certificates.crt" ] || { podman image unmount "$image" >/dev/null; die "the image has no CA bundle"; }
  podman image unmount "$image" >/dev/null
  echo "$image: user $user, entrypoint $entry, CA bundle present, $(podman image inspect "$image" --format '{{.Size}}') bytes"
  podman run --rm --network none "$image" version
}

# env_flags prints the workflow's connection environment as podman run
# flags, one a line, so the image talks to the servers the workflow does.
env_flags() { read_file workflow-env "$workflow" "$job" | while IFS= read -r kv; do printf -- '-e\n%s\n' "$kv"; done; }

# in_image ARGS... runs stanmigrate's image against the compose servers,
# with the state volume as its working directory.
in_image() {
  local e=()
  mapfile -t e < <(env_flags)
  podman run --rm --network host "${e[@]}" -v "$state_volume:/state" -v "$repo/.ci/containers:/fixtures:ro" "$image" "$@"
}

stage_image_plan() {
  podman volume create "$state_volume" >/dev/null
  in_image fixture load /fixtures/bulk.yaml || die "fixture load of .ci/containers/bulk.yaml from the image failed"
  in_image plan --channel 'bulk.*' -o plan.yaml >/dev/null || die "plan from the image failed"
  echo "plan.yaml written on volume $state_volume"
}

bulk_stored() { curl -fsS 'http://127.0.0.1:8223/jsz?streams=true' | read_file jsz-messages bulk_; }

stage_image_kill() {
  local total e=() stored deadline=$((SECONDS + 120)) code
  total=$(read_file fixture-total "$bulk_fixture")
  mapfile -t e < <(env_flags)
  podman run -d --name "$migrate_ctr" --network host "${e[@]}" -v "$state_volume:/state" "$image" \
    migrate --plan plan.yaml --state /state/checkpoints >/dev/null || die "cannot start migrate from the image"
  while :; do
    stored=$(bulk_stored)
    [ "$stored" -ge $((total / 5)) ] && break
    [ "$(podman inspect -f '{{.State.Running}}' "$migrate_ctr")" = true ] ||
      die "migrate ended before it could be killed ($stored of $total stored): make .ci/containers/bulk.yaml bigger"
    [ $SECONDS -lt $deadline ] || die "migrate copied only $stored of $total messages in 120 s"
    sleep 0.2
  done
  podman kill -s KILL "$migrate_ctr" >/dev/null
  code=$(podman wait "$migrate_ctr")
  sleep 1 # publishes in flight at the kill may still land
  stored=$(bulk_stored)
  echo "killed the migrate container (exit $code) with $stored of $total messages stored; its last lines:"
  podman logs --tail 3 "$migrate_ctr" 2>&1 | sed 's/^/   /'
  podman rm "$migrate_ctr" >/dev/null
  [ "$code" = 137 ] || die "the migrate container exited $code, not 137 (SIGKILL)"
  [ "$stored" -gt 0 ] && [ "$stored" -lt "$total" ] || die "$stored of $total messages stored at the kill: it was not mid-copy"
}

stage_image_resume() {
  local total before stored
  total=$(read_file fixture-total "$bulk_fixture")
  before=$(bulk_stored)
  in_image migrate --plan plan.yaml --state /state/checkpoints --quiet || die "the re-run of migrate from the image failed"
  stored=$(bulk_stored)
  [ "$stored" = "$total" ] || die "after the re-run the bulk streams hold $stored messages, want $total"
  echo "resumed: the re-run stored the remaining $((stored - before)) of $total messages (streams held $before)"
}

stage_image_verify() {
  in_image verify --plan plan.yaml || die "verify from the image found differences or failed"
}

# --- teardown, always --------------------------------------------------------

dump_logs() {
  local name
  have podman && [ -n "${CONTAINERS_CONF:-}" ] || return 0
  for name in $(podman ps -a --format '{{.Names}}' 2>/dev/null); do
    echo "--- log of container $name (first and last lines):" >&2
    podman logs "$name" 2>&1 | sed -n '1,5p' >&2
    echo "    ..." >&2
    podman logs --tail 10 "$name" 2>&1 >&2
  done
}

teardown() {
  if [ -n "${CONTAINERS_CONF:-}" ] && have podman; then
    podman rm -f "$migrate_ctr" >/dev/null 2>&1
    compose down -v >/dev/null 2>&1
    podman volume rm -f "$state_volume" >/dev/null 2>&1
    podman network rm -f "${project}_default" >/dev/null 2>&1
    # Not `podman system reset`, which also touches ~/.config/containers:
    # the private storage goes with the run directory below.
    podman rmi -af >/dev/null 2>&1
    [ -z "$(podman ps -aq 2>/dev/null)" ] || echo "containers.sh: teardown: containers are left" >&2
  fi
  # CNI keeps an IP-allocation directory per network outside podman's
  # storage; it is ours only if it was not there before the run.
  [ $cni_ipam_existed = 1 ] || rm -rf "$cni_ipam"
  local d
  for d in "${new_runtime_dirs[@]}"; do
    [ -d "$d" ] || continue
    [ "$d" = /var/lib/containers ] && rm -rf /var/lib/containers/cache
    # podman bind-mounts /run/netns onto itself to share it.
    if [ -z "$(ls -A "$d")" ]; then while mountpoint -q "$d"; do umount "$d" || break; done; fi
    find "$d" -depth -type d -empty -delete 2>/dev/null
  done
  if [ -n "$run_dir" ]; then
    findmnt -rn -o TARGET | grep "^$run_dir/" | sort -r | xargs -r umount -l 2>/dev/null
    rm -rf "$run_dir"
  fi
}

# The global podman configuration and storage a run must leave alone.
global_paths=(/etc/containers /etc/cni /var/lib/containers /root/.config/containers /root/.local/share/containers)
# Image builds write containers/image's blob-info cache to the fixed
# /var/lib/containers/cache whatever the storage configuration says: it is
# podman's storage, left out of the comparison.
fingerprint() {
  { find "${global_paths[@]}" -path /var/lib/containers/cache -prune -o -printf '%p %s %T@\n' 2>/dev/null || true; } | sort
}

on_exit() {
  local rc=$? t0
  set +e
  trap - EXIT INT TERM
  if [ $rc -ne 0 ]; then
    dump_logs
    echo "containers.sh: FAILED in stage $current${reason:+: $reason}" >&2
  fi
  current=teardown
  t0=$(now)
  teardown
  stage_times+=("teardown $(since "$t0")")
  if [ -n "${before+set}" ] && [ "$(fingerprint)" != "$before" ]; then
    echo "containers.sh: the run changed podman's global configuration or storage:" >&2
    diff <(echo "$before") <(fingerprint) >&2
    [ $rc -ne 0 ] || rc=1
  fi
  echo "== stage times (seconds)"
  printf '   %s\n' "${stage_times[@]}"
  echo "   total $(since "$start")"
  # The plain closing line CI reads: stages passed, and the one that failed.
  echo "containers: $((${#stage_times[@]} - 1)) passed, $([ $rc -eq 0 ] && echo 0 || echo 1) failed"
  exit $rc
}

start=$(now)
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/stanmigrate-containers.XXXXXX")
mkdir -p "$run_dir/bin"
trap on_exit EXIT
trap 'reason="interrupted"; exit 130' INT TERM

run_stage install stage_install
before=$(fingerprint) # after the install, which may add /etc files of its own
run_stage preflight stage_preflight
run_stage configure stage_configure
run_stage build-servers stage_build_servers
run_stage build-images stage_build_images
run_stage compose-up stage_compose_up
run_stage workflow stage_workflow
run_stage junit stage_junit
run_stage image-build stage_image_build
run_stage image-plan stage_image_plan
run_stage image-kill stage_image_kill
run_stage image-resume stage_image_resume
run_stage image-verify stage_image_verify
