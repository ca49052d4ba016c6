// Pins the nats-server release the test rig builds for line 2.12.
// Bump with: go get github.com/nats-io/nats-server/v2@vX.Y.Z && go mod tidy
module github.com/stanmigrate/stanmigrate/internal/testkit/serverbin/lines/v2_12

go 1.25.0

require github.com/nats-io/nats-server/v2 v2.12.15

require (
	github.com/antithesishq/antithesis-sdk-go v0.7.2-default-no-op // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
