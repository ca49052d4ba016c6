# stanmigrate's image: the static binary, CA certificates, a non-root user
# and one writable directory. Nothing is pulled: it starts FROM scratch and
# copies files that exist before the build, so it builds offline.
#
# Build it (docs/ci.md, "stanmigrate's image"):
#
#   .ci/image.sh stanmigrate:dev        # podman, or ENGINE=docker
#
# which stages a build context holding what the COPY lines below name:
#   stanmigrate            CGO_ENABLED=0 go build -trimpath -o stanmigrate ./cmd/stanmigrate
#   ca-certificates.crt    the build machine's CA bundle (/etc/ssl/certs/ca-certificates.crt)
#   .ci/image/state/       the state directory's placeholder
#
# Run it with the state on a volume mounted at /state (the working
# directory, writable by the image's user 65532):
#
#   docker run --rm -v stanmigrate-state:/state IMAGE plan -o plan.yaml
#   docker run --rm -v stanmigrate-state:/state IMAGE migrate --plan plan.yaml
#
# or with the state on the target (--state kv:NAME), which needs no volume.
FROM scratch

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY stanmigrate /stanmigrate
# The placeholder gives /state to the image's user: a named volume mounted
# there starts as a copy of it, so a non-root run can write its plan and
# checkpoints.
COPY --chown=65532:65532 .ci/image/state/ /state/

# A numeric user: scratch has no /etc/passwd, and Kubernetes'
# runAsNonRoot can only check a numeric one.
USER 65532:65532
WORKDIR /state
ENV HOME=/state
ENTRYPOINT ["/stanmigrate"]
CMD ["--help"]
